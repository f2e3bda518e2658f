/* load-plan.h - magpie-load's arrival plan: phases parsed from "ramp:30s:0-50/s,steady:60s:50/s"
 * and the open-loop arrival schedule they define. Pure functions, no I/O. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define LOAD_PLAN_ERROR (load_plan_error_quark ())

typedef enum {
  LOAD_PLAN_ERROR_INVALID,
} LoadPlanError;

/* Arrival rates above this are typing mistakes on any machine magpie-load runs on. */
#define LOAD_PLAN_MAX_RATE      100000.0
/* One phase longer than a day is a typing mistake too (and keeps the sums exact). */
#define LOAD_PLAN_MAX_PHASE_S   (24.0 * 3600)
#define LOAD_PLAN_MAX_PHASES    64

typedef struct {
  char   *name;       /* "ramp-1", "steady-2", "pause-3": kind and 1-based position */
  char   *kind;       /* "ramp", "steady" or "pause" */
  double  start_s;    /* from the start of the run */
  double  duration_s;
  double  rate_from;  /* arrivals per second at the phase's start and end */
  double  rate_to;
} LoadPhase;

typedef struct {
  LoadPhase *phases;
  guint      n_phases;
  double     total_s;
} LoadPlan;

GQuark     load_plan_error_quark  (void);

/* Parses comma-separated phases, each one of
 *   ramp:DURATION:FROM-TO/s    steady:DURATION:RATE/s    pause:DURATION
 * with DURATION a number and a unit (ms, s, m, h) and rates per second (/s) or per minute
 * (/min). Returns NULL and sets @error naming the phase and what it expected. */
LoadPlan  *load_plan_parse        (const char     *text,
                                   GError        **error);
void       load_plan_free         (LoadPlan       *plan);
/* The phase that holds @t (seconds from the start); -1 before 0 or at/after the end. */
int        load_plan_phase_at     (const LoadPlan *plan,
                                   double          t);
/* The target arrival rate at @t (linear within a ramp), 0 outside the plan. */
double     load_plan_rate_at      (const LoadPlan *plan,
                                   double          t);
/* Arrivals due by @t: the integral of the rate from 0 to @t (clamped to the plan). The
 * generator starts virtual user k (0-based) once this reaches k + 0.5, so a steady 1/s for
 * 5 s starts five, at 0.5 s, 1.5 s, ... 4.5 s. */
double     load_plan_arrivals_by  (const LoadPlan *plan,
                                   double          t);
/* "ramp 0→50/s" style description of one phase, for reports. */
char      *load_phase_describe    (const LoadPhase *phase);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LoadPlan, load_plan_free)

G_END_DECLS
