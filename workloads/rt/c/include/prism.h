/*
 * What a C workload provides to the Prism measurement harness (see
 * workloads/README.md, "Adding a workload"). The code is freestanding: no
 * libc, no system calls; memory comes from the static data of the C
 * sources and from the heap the harness passes to prism_setup (the
 * task's declared heap, less the room the harness keeps for its records).
 */
#ifndef PRISM_H
#define PRISM_H

/* Reads the task's argument words (`key=value ...`, not NUL terminated),
 * prepares the inputs in `heap` (heap_size bytes, yours for the whole run)
 * or in static data. Returns 0 when ready, anything else to refuse (the
 * harness prints the code and the run fails). Not measured. */
int prism_setup(const char *args, unsigned long args_len, void *heap, unsigned long heap_size);

/* One job: the measured work. It must redo the whole work from the same
 * inputs each time (restore what it changes), so that every job has the
 * same result. */
void prism_job(void);

/* A digest of the last job's output (not measured). */
unsigned long long prism_result(void);

/* The value prism_result must have, computed outside the guest (on the
 * host, or a published test vector). A job with another result ends the
 * run as a failure. */
unsigned long long prism_expected(void);

#endif
