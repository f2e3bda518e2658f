#!/usr/bin/python3
# cifar-jpegs.py - photos for magpie-load: CIFAR-10 test images scaled up and saved as JPEGs
#
# usage: tools/cifar-jpegs.py OUT_DIR [--count 1000] [--size 512] [--cifar10 DIR]
# Writes OUT_DIR/cifar-NNNNN-LABEL.jpg (quality 90). Each image is a different CIFAR-10 test
# image, so each has its own SHA-256 and object key. The default source is the shared data set
# beside the checkout (../shared/data/cifar10/test_batch.bin.gz); it is read, never copied.
import argparse
import gzip
import os
import sys

import cv2
import numpy as np

RECORD = 1 + 3 * 32 * 32   # label, then the red, green and blue planes


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--cifar10", default=os.path.join(here, "..", "..", "shared", "data",
                                                          "cifar10"))
    args = parser.parse_args()
    if not 1 <= args.count <= 10000 or not 32 <= args.size <= 4096:
        sys.exit("cifar-jpegs: --count is 1 to 10000 and --size 32 to 4096")

    with open(os.path.join(args.cifar10, "batches.meta.txt")) as f:
        labels = [line.strip() for line in f if line.strip()]
    with gzip.open(os.path.join(args.cifar10, "test_batch.bin.gz")) as f:
        records = np.frombuffer(f.read(), np.uint8).reshape(-1, RECORD)
    os.makedirs(args.out, exist_ok=True)
    for i in range(args.count):
        label = labels[records[i, 0]]
        rgb = records[i, 1:].reshape(3, 32, 32).transpose(1, 2, 0)
        big = cv2.resize(rgb, (args.size, args.size), interpolation=cv2.INTER_CUBIC)
        path = os.path.join(args.out, "cifar-%05d-%s.jpg" % (i, label))
        cv2.imwrite(path, cv2.cvtColor(big, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    print("cifar-jpegs: %d JPEGs of %d×%d in %s" % (args.count, args.size, args.size, args.out))


if __name__ == "__main__":
    main()
