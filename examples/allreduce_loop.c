/* The README's example: a training-style loop that admits joiners between
 * steps and averages gradients with retries. C99, public header only.
 *
 *   CHORUS_COORDINATOR=127.0.0.1:29500 CHORUS_SECRET=s ./allreduce_loop [steps]
 */
#include <stdio.h>
#include <stdlib.h>

#include <chorus.h>

int main(int argc, char** argv) {
  int steps = argc > 1 ? atoi(argv[1]) : 100;
  chorusInit();
  chorusCommParams_t p;
  chorusCommParamsInit(&p); /* defaults + CHORUS_* environment */

  chorusComm_t comm = NULL;
  if (chorusCommCreate(&p, &comm) != chorusSuccess || chorusCommConnect(comm) != chorusSuccess) {
    fprintf(stderr, "connect: %s\n", chorusGetLastError(comm));
    return 1;
  }
  float grad[1024] = {0};
  for (int step = 0; step < steps; ++step) {
    int pending = 0;
    chorusPeersPending(comm, &pending);        /* joint: same answer everywhere */
    if (pending) chorusUpdateMembership(comm); /* admit joiners */
    for (int i = 0; i < 1024; ++i) grad[i] = 1.0f;
    chorusOpInfo_t info = {.size = sizeof(info)};
    chorusResult_t r =
        chorusAllReduceWithRetry(grad, grad, 1024, chorusFloat32, chorusAvg, 0, comm, &info);
    if (r != chorusSuccess) {
      fprintf(stderr, "step %d: %s\n", step, chorusGetLastError(comm));
      break;
    }
    if (grad[0] != 1.0f) {
      fprintf(stderr, "step %d: average of ones is %g\n", step, grad[0]);
      return 1;
    }
  }
  int rank = 0, n = 0;
  chorusCommRank(comm, &rank);
  chorusCommWorldSize(comm, &n);
  printf("rank %d of %d: %d steps done\n", rank, n, steps);
  chorusCommDestroy(comm); /* leaves the group gracefully */
  chorusFinalize();
  return 0;
}
