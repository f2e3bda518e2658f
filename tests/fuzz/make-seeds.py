#!/usr/bin/python3
# make-seeds.py - writes the seeds that need no signer: S3 requests and XML bodies, JSON
# bodies, small ONNX graphs and small images (make-seeds.c writes the signed ones)
#
#   tests/fuzz/make-seeds.py tests/fuzz/corpus
#
# Needs python3-onnx and python3-pil (tools/deps.sh). Every seed is small: libFuzzer mutates
# small inputs fastest, and the whole corpus stays far below 1 MB.
import io
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

out = sys.argv[1]


def write(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    print(f"{d}/{name} ({len(data)} bytes)")


# fuzz-s3-request: METHOD, /raw/path, raw query, copy source, Range
write("fuzz-s3-request", "put", "PUT\n/magpie/users/fuzz/photo.jpg\n\n\n")
write("fuzz-s3-request", "list-v2",
      "GET\n/magpie\nlist-type=2&prefix=users%2Ffuzz%2F&delimiter=%2F&max-keys=10\n\n")
write("fuzz-s3-request", "upload-part",
      "PUT\n/magpie/users/fuzz/big%20file.png\npartNumber=3&uploadId=u1\n\n")
write("fuzz-s3-request", "complete", "POST\n/magpie/users/fuzz/big.png\nuploadId=u1\n\n")
write("fuzz-s3-request", "copy",
      "PUT\n/magpie/users/fuzz/copy.jpg\n\n/magpie/users/fuzz/photo%2B1.jpg?versionId=null\n")
write("fuzz-s3-request", "get-range",
      "GET\n/magpie/users/fuzz/%E2%82%AC%0D%0A.jpg\nresponse-content-type=text%2Fplain\n\nbytes=-500")
write("fuzz-s3-request", "delete-objects", "POST\n/magpie/\ndelete\n\n")
write("fuzz-s3-request", "subresource", "GET\n/magpie/users/fuzz/x\ntagging\n\nbytes=5-")

# fuzz-s3-xml: first byte odd = CompleteMultipartUpload, even = Delete
write("fuzz-s3-xml", "complete",
      b"\x01<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      b"<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
      b"<Part><ETag>\"0cc175b9c0f1b6a831c399e269772661\"</ETag><PartNumber>1</PartNumber></Part>"
      b"<Part><ETag>\"92eb5ffee6ae2fec3ad71c777531578f\"</ETag><PartNumber>2</PartNumber></Part>"
      b"</CompleteMultipartUpload>")
write("fuzz-s3-xml", "delete",
      b"\x00<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet>"
      b"<Object><Key>users/fuzz/a.jpg</Key></Object>"
      b"<Object><Key>users/fuzz/&lt;b&amp;c&gt;.jpg</Key><VersionId>null</VersionId></Object>"
      b"</Delete>")

# fuzz-json-body: the REST bodies
write("fuzz-json-body", "credentials",
      '{"identity_id": "0c9a3f4e5d6b7a8c9d0e1f2a3b4c5d6e", "secret": "s3cr3t", '
      '"duration_seconds": 3600}')
write("fuzz-json-body", "account", '{"username": "Ada.Lovelace", "password": "correct horse"}')
write("fuzz-json-body", "photo", '{"key": "users/0c9a/\\u20ac.jpg"}')
write("fuzz-json-body", "digit",
      '{"pixels": [' + ", ".join(["0", "0.5", "1", "255", "1e2"] * 156 + ["0"] * 4) + "]}")


# fuzz-onnx: small graphs of the ops the bundled models use
def model(nodes, inputs, outputs, inits, opset=13):
    g = helper.make_graph(nodes, "g", inputs, outputs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m.SerializeToString()


rng = np.random.default_rng(1)


def init(name, *shape):
    return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)


f32 = TensorProto.FLOAT
write("fuzz-onnx", "conv-relu-pool-gemm", model(
    [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
     helper.make_node("BatchNormalization", ["c", "s", "bb", "m", "v"], ["n"]),
     helper.make_node("Relu", ["n"], ["r"]),
     helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
     helper.make_node("Flatten", ["p"], ["f"]),
     helper.make_node("Gemm", ["f", "gw", "gb"], ["g"], transB=1),
     helper.make_node("Softmax", ["g"], ["y"])],
    [helper.make_tensor_value_info("x", f32, ["N", 1, 8, 8])],
    [helper.make_tensor_value_info("y", f32, ["N", 3])],
    [init("w", 2, 1, 3, 3), init("b", 2), init("s", 2), init("bb", 2), init("m", 2),
     numpy_helper.from_array(np.ones(2, np.float32), "v"), init("gw", 3, 32), init("gb", 3)]))
write("fuzz-onnx", "add-concat-reshape", model(
    [helper.make_node("Add", ["x", "k"], ["a"]),
     helper.make_node("Concat", ["a", "x"], ["c"], axis=1),
     helper.make_node("GlobalAveragePool", ["c"], ["g"]),
     helper.make_node("Reshape", ["g", "shape"], ["y"])],
    [helper.make_tensor_value_info("x", f32, [1, 2, 4, 4])],
    [helper.make_tensor_value_info("y", f32, [1, 4])],
    [init("k", 1, 2, 1, 1), numpy_helper.from_array(np.array([1, 4], np.int64), "shape")]))
write("fuzz-onnx", "matmul-clip-avgpool", model(
    [helper.make_node("AveragePool", ["x"], ["p"], kernel_shape=[2, 2]),
     helper.make_node("Clip", ["p", "lo", "hi"], ["c"]),
     helper.make_node("MatMul", ["c", "w"], ["y"])],
    [helper.make_tensor_value_info("x", f32, [1, 1, 3, 3])],
    [helper.make_tensor_value_info("y", f32, [1, 1, 2, 5])],
    [numpy_helper.from_array(np.array(0, np.float32), "lo"),
     numpy_helper.from_array(np.array(6, np.float32), "hi"), init("w", 2, 5)]))


# fuzz-image: one tiny image per format, and a truncated PNG
def image(fmt, mode="RGB", size=(5, 4), **kw):
    im = Image.new(mode, size)
    for x in range(size[0]):
        for y in range(size[1]):
            im.putpixel((x, y), tuple((x * 50 + y * 20 + c * 70) % 256
                                      for c in range(len(mode))))
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()


write("fuzz-image", "rgb.png", image("PNG"))
write("fuzz-image", "rgba-interlaced.png", image("PNG", "RGBA", interlace=1))
write("fuzz-image", "gray.jpg", image("JPEG", "L", (16, 16)))
write("fuzz-image", "rgb-progressive.jpg", image("JPEG", "RGB", (17, 9), progressive=True))
write("fuzz-image", "rgb.webp", image("WEBP"))
write("fuzz-image", "palette.gif", image("GIF", "P"))
write("fuzz-image", "rgb.bmp", image("BMP"))
write("fuzz-image", "truncated.png", image("PNG", size=(20, 20))[:60])
