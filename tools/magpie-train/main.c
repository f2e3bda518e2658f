/* magpie-train - trains Magpie's bundled models (digits on MNIST, photos on CIFAR-10),
 * exports them as ONNX with their JSON sidecar, evaluates ONNX models, and measures the
 * accuracy / time / cost table of the original MNIST study on this machine. */
#include "config.h"

#include <cblas.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn-image.h"
#include "nn.h"
#include "tr-data.h"
#include "tr-export.h"
#include "tr-train.h"

#define EXIT_BAD_INPUT 2

/* m5.xlarge on demand in us-east-1: $0.192 an hour for 4 vCPUs */
#define DEFAULT_PRICE_PER_VCPU_HOUR 0.048

static char *opt_mnist, *opt_cifar, *opt_out, *opt_model, *opt_image, *opt_benchmarks;
static int opt_epochs = -1, opt_threads = 0, opt_seed = 1, opt_batch = -1, opt_repeat = 20;
static int opt_width = -1;
static double opt_fraction = 1.0, opt_lr = -1.0, opt_price = DEFAULT_PRICE_PER_VCPU_HOUR;
static gboolean opt_sweep, opt_quiet;

static const GOptionEntry train_entries[] = {
  { "mnist", 0, 0, G_OPTION_ARG_FILENAME, &opt_mnist, "MNIST folder (the idx .gz files)", "DIR" },
  { "cifar10", 0, 0, G_OPTION_ARG_FILENAME, &opt_cifar, "CIFAR-10 folder (*.bin.gz)", "DIR" },
  { "out", 'o', 0, G_OPTION_ARG_FILENAME, &opt_out, "Where to write the model (.onnx; the "
    "sidecar .json goes beside it)", "M.onnx" },
  { "epochs", 'e', 0, G_OPTION_ARG_INT, &opt_epochs, "Passes over the training set", "N" },
  { "fraction", 'f', 0, G_OPTION_ARG_DOUBLE, &opt_fraction, "Train on this share of the "
    "training set (0 < F <= 1)", "F" },
  { "threads", 't', 0, G_OPTION_ARG_INT, &opt_threads, "Threads (0: one per core)", "N" },
  { "seed", 's', 0, G_OPTION_ARG_INT, &opt_seed, "Random seed (same seed, same model)", "S" },
  { "batch", 'b', 0, G_OPTION_ARG_INT, &opt_batch, "Mini-batch size", "B" },
  { "width", 'w', 0, G_OPTION_ARG_INT, &opt_width,
    "photos: channels of the first conv (32: half of Page's ResNet-9)", "W" },
  { "lr", 0, 0, G_OPTION_ARG_DOUBLE, &opt_lr, "Peak learning rate", "LR" },
  { "quiet", 'q', 0, G_OPTION_ARG_NONE, &opt_quiet, "No progress lines", NULL },
  { "sweep", 0, 0, G_OPTION_ARG_NONE, &opt_sweep, "digits: train on 30/50/80/100 % of the "
    "data with 1 and 2 threads and print the accuracy / time / cost table", NULL },
  { "price-per-vcpu-hour", 0, 0, G_OPTION_ARG_DOUBLE, &opt_price, "Sweep: US$ per vCPU-hour "
    "(default 0.048, m5.xlarge on demand)", "P" },
  { "benchmarks", 0, 0, G_OPTION_ARG_FILENAME, &opt_benchmarks, "Sweep: also write the table "
    "to this Markdown file", "FILE" },
  { NULL }
};

static const GOptionEntry eval_entries[] = {
  { "model", 'm', 0, G_OPTION_ARG_FILENAME, &opt_model, "ONNX model (sidecar .json beside it)",
    "M.onnx" },
  { "mnist", 0, 0, G_OPTION_ARG_FILENAME, &opt_mnist, "Evaluate on the MNIST test set", "DIR" },
  { "cifar10", 0, 0, G_OPTION_ARG_FILENAME, &opt_cifar, "Evaluate on the CIFAR-10 test set",
    "DIR" },
  { "image", 'i', 0, G_OPTION_ARG_FILENAME, &opt_image, "Classify one photo and time decode, "
    "preprocessing and the model on one thread", "FILE" },
  { "repeat", 'r', 0, G_OPTION_ARG_INT, &opt_repeat, "--image: timed repetitions", "N" },
  { "threads", 't', 0, G_OPTION_ARG_INT, &opt_threads, "Threads (0: one per core)", "N" },
  { NULL }
};

static int
usage (void)
{
  g_printerr ("usage: magpie-train digits --mnist DIR --out M.onnx [--epochs N] [--fraction F] "
              "[--threads N] [--seed S]\n"
              "       magpie-train digits --mnist DIR --sweep [--price-per-vcpu-hour P]\n"
              "       magpie-train photos --cifar10 DIR --out M.onnx [--epochs N] ...\n"
              "       magpie-train eval --model M.onnx (--mnist DIR | --cifar10 DIR | --image F)\n"
              "(magpie-train COMMAND --help for all options)\n");
  return EXIT_BAD_INPUT;
}

static TrDataset *
load (TrTask task, gboolean train)
{
  g_autoptr(GError) error = NULL;
  TrDataset *ds = task == TR_TASK_DIGITS ? tr_mnist_load (opt_mnist, train, &error)
                                         : tr_cifar10_load (opt_cifar, train, &error);

  if (!ds)
    g_printerr ("magpie-train: %s\n", error->message);
  return ds;
}

static void
print_confusion (const int *confusion, const char *const *labels)
{
  printf ("confusion (rows: true class, columns: predicted)\n%10s", "");
  for (int j = 0; j < 10; j++)
    printf (" %5.5s", labels[j]);
  printf ("\n");
  for (int i = 0; i < 10; i++)
    {
      printf ("%10.10s", labels[i]);
      for (int j = 0; j < 10; j++)
        printf (" %5d", confusion[i * 10 + j]);
      printf ("\n");
    }
}

/* Runs an exported model with lib/nn over a test set, normalised as its sidecar says.
 * Returns the accuracy, or -1 after printing why. */
static double
evaluate_onnx (const char *path, const TrDataset *ds, int threads, int *confusion)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(NnModel) model = nn_model_new_from_file (path, &error);
  g_autoptr(NnImageConfig) cfg = nn_image_config_new ();
  g_autofree char *sidecar = nn_image_sidecar_path (path);
  const int B = 100, HW = ds->H * ds->W;
  int64_t ne[4] = { B, ds->C, ds->H, ds->W }, mne[NN_MAX_DIMS];
  g_autoptr(NnTensor) x = NULL;
  int correct = 0;

  if (!model)
    {
      g_printerr ("magpie-train: %s\n", error->message);
      return -1.0;
    }
  if (g_file_test (sidecar, G_FILE_TEST_EXISTS) && !nn_image_config_load (cfg, sidecar, &error))
    {
      g_printerr ("magpie-train: %s\n", error->message);
      return -1.0;
    }
  if (nn_model_get_n_inputs (model) != 1 || nn_model_get_input_shape (model, 0, mne) != 4
      || mne[1] != ds->C || mne[2] != ds->H || mne[3] != ds->W)
    {
      g_printerr ("magpie-train: %s does not take (N, %d, %d, %d) images\n", path, ds->C, ds->H,
                  ds->W);
      return -1.0;
    }
  nn_model_set_threads (model, threads);
  memset (confusion, 0, sizeof (int) * 100);
  x = nn_tensor_new (NN_DTYPE_FLOAT, 4, ne);
  for (int b0 = 0; b0 < ds->n; b0 += B)
    {
      int nb = MIN (B, ds->n - b0);
      const NnTensor *y;
      float *xd = x->data;

      x->ne[0] = nb;
      for (int i = 0; i < nb; i++)
        for (int c = 0; c < ds->C; c++)
          for (int j = 0; j < HW; j++)
            xd[((size_t) i * ds->C + c) * HW + j] =
              (ds->images[((size_t) (b0 + i) * ds->C + c) * HW + j] * cfg->scale - cfg->mean[c])
              / cfg->std[c];
      if (!nn_model_run (model, x, 1, &error))
        {
          g_printerr ("magpie-train: %s\n", error->message);
          return -1.0;
        }
      y = nn_model_get_output (model, 0);
      if (y->ndim != 2 || y->ne[0] != nb || y->ne[1] != 10)
        {
          g_printerr ("magpie-train: %s: expected (N, 10) class scores\n", path);
          return -1.0;
        }
      for (int i = 0; i < nb; i++)
        {
          const float *p = (const float *) y->data + (size_t) i * 10;
          int best = 0;

          for (int k = 1; k < 10; k++)
            if (p[k] > p[best])
              best = k;
          correct += best == ds->labels[b0 + i];
          confusion[ds->labels[b0 + i] * 10 + best]++;
        }
    }
  return (double) correct / ds->n;
}

static char *
command_line (const char *cmd, int argc, char **argv)
{
  GString *s = g_string_new ("magpie-train ");

  g_string_append (s, cmd);
  for (int i = 1; i < argc; i++)
    {
      g_autofree char *q = g_shell_quote (argv[i]);

      g_string_append_c (s, ' ');
      g_string_append (s, strchr (argv[i], ' ') || strchr (argv[i], '\'') ? q : argv[i]);
    }
  return g_string_free (s, FALSE);
}

static gboolean
parse (int *argc, char ***argv, const char *what, const GOptionEntry *entries)
{
  g_autoptr(GOptionContext) ctx = g_option_context_new (what);
  g_autoptr(GError) error = NULL;

  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, argc, argv, &error))
    {
      g_printerr ("magpie-train: %s\n", error->message);
      return FALSE;
    }
  if (*argc > 1)
    {
      g_printerr ("magpie-train: unexpected argument '%s'\n", (*argv)[1]);
      return FALSE;
    }
  return TRUE;
}

static gboolean
check_train_flags (TrTask task)
{
  if (task == TR_TASK_DIGITS ? !opt_mnist : !opt_cifar)
    {
      g_printerr ("magpie-train: give the data folder with %s\n",
                  task == TR_TASK_DIGITS ? "--mnist DIR" : "--cifar10 DIR");
      return FALSE;
    }
  if (!opt_out && !opt_sweep)
    {
      g_printerr ("magpie-train: give the model's path with --out M.onnx\n");
      return FALSE;
    }
  if (opt_out && !g_str_has_suffix (opt_out, ".onnx"))
    {
      g_printerr ("magpie-train: --out must end in .onnx (the sidecar .json goes beside it)\n");
      return FALSE;
    }
  if (!(opt_fraction > 0.0 && opt_fraction <= 1.0))
    {
      g_printerr ("magpie-train: --fraction must be in (0, 1]\n");
      return FALSE;
    }
  if (opt_epochs == 0 || opt_epochs < -1 || opt_epochs > 1000 || opt_threads < 0
      || opt_threads > 256 || opt_batch == 0 || opt_batch < -1 || opt_batch > 4096
      || opt_seed < 0 || opt_width == 0 || opt_width < -1 || opt_width > 128
      || (opt_lr != -1.0 && !(opt_lr > 0.0 && opt_lr < 10.0))
      || !(opt_price >= 0.0))
    {
      g_printerr ("magpie-train: --epochs 1..1000, --threads 0..256, --batch 1..4096, "
                  "--seed >= 0, --width 1..128, --lr in (0, 10) and --price-per-vcpu-hour >= 0, please\n");
      return FALSE;
    }
  if (opt_sweep && task != TR_TASK_DIGITS)
    {
      g_printerr ("magpie-train: --sweep is for digits\n");
      return FALSE;
    }
  return TRUE;
}

static void
recipe_from_flags (TrRecipe *r, TrTask task)
{
  tr_recipe_init (r, task);
  if (opt_epochs > 0)
    r->epochs = opt_epochs;
  if (opt_batch > 0)
    r->batch = opt_batch;
  if (opt_lr > 0)
    r->lr = (float) opt_lr;
  if (opt_width > 0)
    r->width = opt_width;
  r->seed = (guint64) opt_seed;
  r->threads = opt_threads > 0 ? opt_threads : (int) g_get_num_processors ();
  r->quiet = opt_quiet;
}

/* The original study's table, on this machine: data fraction x threads. */
static int
sweep (void)
{
  static const double fractions[] = { 0.3, 0.5, 0.8, 1.0 };
  g_autoptr(TrDataset) test = load (TR_TASK_DIGITS, FALSE);
  g_autoptr(GString) table = g_string_new (NULL);

  if (!test)
    return EXIT_BAD_INPUT;
  g_string_append_printf (table, "| data | images | threads | test accuracy | wall time s | "
                          "CPU-seconds | cost US$ (%g/vCPU-h) |\n|---:|---:|---:|---:|---:|---:|---:|\n",
                          opt_price);
  printf ("%s", table->str);
  fflush (stdout);
  for (guint f = 0; f < G_N_ELEMENTS (fractions); f++)
    for (int threads = 1; threads <= 2; threads++)
      {
        g_autoptr(TrDataset) train = load (TR_TASK_DIGITS, TRUE);
        g_autoptr(TrNet) net = NULL;
        TrTrainStats stats;
        TrRecipe r;
        double acc, cost;
        g_autofree char *row = NULL;

        if (!train)
          return EXIT_BAD_INPUT;
        tr_dataset_truncate (train, (int) (train->n * fractions[f]));
        recipe_from_flags (&r, TR_TASK_DIGITS);
        r.threads = threads;
        r.quiet = TRUE;
        net = tr_recipe_net (&r);
        tr_train (net, &r, train, &stats);
        acc = tr_evaluate (net, &r, test, NULL);
        /* billed for the vCPUs held while it runs */
        cost = threads * stats.seconds / 3600.0 * opt_price;
        row = g_strdup_printf ("| %.0f %% | %d | %d | %.4f | %.1f | %.1f | %.6f |\n",
                               fractions[f] * 100, train->n, threads, acc, stats.seconds,
                               stats.cpu_seconds, cost);
        printf ("%s", row);
        fflush (stdout);
        g_string_append (table, row);
      }
  if (opt_benchmarks)
    {
      g_autoptr(GError) error = NULL;

      if (!g_file_set_contents (opt_benchmarks, table->str, -1, &error))
        {
          g_printerr ("magpie-train: %s\n", error->message);
          return 1;
        }
    }
  return 0;
}

static int
train_cmd (TrTask task, int argc, char **argv)
{
  g_autofree char *command = command_line (task == TR_TASK_DIGITS ? "digits" : "photos", argc,
                                            argv);
  g_autoptr(TrDataset) train = NULL, test = NULL;
  g_autoptr(TrNet) net = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *sidecar = NULL;
  TrTrainStats stats;
  TrRecipe r;
  int confusion[100];
  double acc, own;

  if (!parse (&argc, &argv, task == TR_TASK_DIGITS ? "digits - train the digit model"
                                                   : "photos - train the photo model",
              train_entries) || !check_train_flags (task))
    return EXIT_BAD_INPUT;
  if (opt_sweep)
    return sweep ();
  if (!(train = load (task, TRUE)) || !(test = load (task, FALSE)))
    return EXIT_BAD_INPUT;
  tr_dataset_truncate (train, (int) ceil (train->n * opt_fraction));
  recipe_from_flags (&r, task);
  if (train->n < r.batch)
    {
      g_printerr ("magpie-train: %d training images are fewer than a batch of %d\n", train->n,
                  r.batch);
      return EXIT_BAD_INPUT;
    }
  net = tr_recipe_net (&r);
  printf ("%s: %d training images, %zu parameters, %.1f M multiply-adds per image, "
          "%d epochs, batch %d, %d threads, seed %d\n", task == TR_TASK_DIGITS ? "digits" : "photos",
          train->n, tr_net_n_params (net), tr_net_macs (net) / 1e6, r.epochs, r.batch, r.threads,
          opt_seed);
  fflush (stdout);
  tr_train (net, &r, train, &stats);
  own = tr_evaluate (net, &r, test, NULL);
  printf ("trained in %.1f s (%.1f CPU-seconds); test accuracy in the trainer %.4f\n",
          stats.seconds, stats.cpu_seconds, own);
  if (!tr_export_onnx (net, task == TR_TASK_DIGITS ? "magpie-digits" : "magpie-photos", opt_out,
                       &error))
    {
      g_printerr ("magpie-train: %s\n", error->message);
      return 1;
    }
  /* the sidecar first (the engine reads its normalisation), then the exported model itself
   * is what is measured */
  sidecar = nn_image_sidecar_path (opt_out);
  if (!tr_export_sidecar (&r, train, &stats, command, own, sidecar, &error))
    {
      g_printerr ("magpie-train: %s\n", error->message);
      return 1;
    }
  acc = evaluate_onnx (opt_out, test, r.threads, confusion);
  if (acc < 0)
    return 1;
  if (!tr_export_sidecar (&r, train, &stats, command, acc, sidecar, &error))
    {
      g_printerr ("magpie-train: %s\n", error->message);
      return 1;
    }
  printf ("wrote %s and %s\naccuracy: %.4f\n", opt_out, sidecar, acc);
  return 0;
}

static double
now_ms (void)
{
  return g_get_monotonic_time () / 1000.0;
}

/* decode (downscaled by the JPEG decoder), preprocess, run: what tagging a photo costs */
static int
eval_image (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(NnModel) model = nn_model_new_from_file (opt_model, &error);
  g_autoptr(NnImageConfig) cfg = nn_image_config_new ();
  g_autofree char *sidecar = nn_image_sidecar_path (opt_model);
  g_autofree double *times = NULL;
  const NnTensor *y = NULL;
  int w = 0, h = 0, best = 0;

  if (!model || !nn_image_config_load (cfg, sidecar, &error))
    {
      g_printerr ("magpie-train: %s\n", error->message);
      return EXIT_BAD_INPUT;
    }
  nn_image_config_fit_model (cfg, model);
  nn_model_set_threads (model, 1);
  if (!gdk_pixbuf_get_file_info (opt_image, &w, &h))
    {
      g_printerr ("magpie-train: %s: not an image this system can decode\n", opt_image);
      return EXIT_BAD_INPUT;
    }
  opt_repeat = CLAMP (opt_repeat, 1, 100000);
  times = g_new (double, opt_repeat);
  for (int i = 0; i < opt_repeat; i++)
    {
      double t0 = now_ms ();
      g_autoptr(NnTensor) x = nn_image_load_scaled (cfg, opt_image, &error);

      if (!x || !nn_model_run (model, x, 1, &error))
        {
          g_printerr ("magpie-train: %s\n", error->message);
          return EXIT_BAD_INPUT;
        }
      times[i] = now_ms () - t0;
    }
  y = nn_model_get_output (model, 0);
  for (int k = 1; k < (int) y->ne[1]; k++)
    if (((float *) y->data)[k] > ((float *) y->data)[best])
      best = k;
  {
    int n = opt_repeat;
    double sorted_median;

    for (int i = 1; i < n; i++)
      for (int j = i; j > 0 && times[j] < times[j - 1]; j--)
        {
          double t = times[j];
          times[j] = times[j - 1];
          times[j - 1] = t;
        }
    sorted_median = times[n / 2];
    printf ("%s: %dx%d (%.2f MP): %s %.3f\n", opt_image, w, h, w * h / 1e6,
            cfg->label_names && best < (int) g_strv_length (cfg->label_names)
            ? cfg->label_names[best] : "?", ((float *) y->data)[best]);
    printf ("decode + preprocess + run on 1 thread: median %.2f ms, best %.2f ms over %d runs\n",
            sorted_median, times[0], n);
  }
  return 0;
}

static int
eval_cmd (int argc, char **argv)
{
  g_autoptr(TrDataset) test = NULL;
  int confusion[100];
  double acc;
  TrTask task;

  if (!parse (&argc, &argv, "eval - measure an ONNX model on a test set", eval_entries))
    return EXIT_BAD_INPUT;
  if (!opt_model || (!!opt_mnist + !!opt_cifar + !!opt_image) != 1)
    {
      g_printerr ("magpie-train: eval needs --model M.onnx and one of --mnist DIR, "
                  "--cifar10 DIR or --image FILE\n");
      return EXIT_BAD_INPUT;
    }
  if (opt_image)
    return eval_image ();
  task = opt_mnist ? TR_TASK_DIGITS : TR_TASK_PHOTOS;
  if (!(test = load (task, FALSE)))
    return EXIT_BAD_INPUT;
  acc = evaluate_onnx (opt_model, test, opt_threads, confusion);
  if (acc < 0)
    return EXIT_BAD_INPUT;
  printf ("%d test images\n", test->n);
  print_confusion (confusion, tr_task_labels (task));
  printf ("accuracy: %.4f\n", acc);
  return 0;
}

int
main (int argc, char **argv)
{
  const char *cmd;

  setlocale (LC_ALL, "");
  /* the trainer runs its own threads, each calling a single-threaded sgemm */
  openblas_set_num_threads (1);
  if (argc < 2)
    return usage ();
  cmd = argv[1];
  argv[1] = argv[0];
  if (g_str_equal (cmd, "digits"))
    return train_cmd (TR_TASK_DIGITS, argc - 1, argv + 1);
  if (g_str_equal (cmd, "photos"))
    return train_cmd (TR_TASK_PHOTOS, argc - 1, argv + 1);
  if (g_str_equal (cmd, "eval"))
    return eval_cmd (argc - 1, argv + 1);
  if (g_str_equal (cmd, "--help") || g_str_equal (cmd, "-h") || g_str_equal (cmd, "help"))
    {
      usage ();
      return 0;
    }
  g_printerr ("magpie-train: unknown command '%s'\n", cmd);
  return usage ();
}
