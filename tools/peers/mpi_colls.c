/* Open MPI beside chorus-bench for the collectives other than all-reduce,
 * with chorus-bench's size conventions (nccl-tests'): size is the whole
 * buffer for all-gather/reduce-scatter/all-to-all (count per block =
 * size / N), the buffer for broadcast/reduce; busbw factor (N-1)/N or 1.
 * float32, sum, out of place, root 0.
 *
 *   mpirun -np N mpi_colls COLL LABEL SIZES_CSV [TARGET_SEC] [MIN_IT] [MAX_IT]
 *
 * Rank 0 prints chorus-bench's CSV row per size:
 *   mpi,LABEL,N,bytes,iters,time_us,algbw_GBps,busbw_GBps,min_us,median_us,max_us
 * Every size is checked once before timing; a wrong element aborts. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ALLGATHER, REDUCESCATTER, ALLTOALL, BROADCAST, REDUCE };

static int cmpd(const void* x, const void* y) {
  double a = *(const double*)x, b = *(const double*)y;
  return a < b ? -1 : a > b;
}

/* Small integers, so every sum is exact in float. */
static float value(int rank, size_t i) {
  return (float)((rank * 7 + i) % 13);
}

static void run(int coll, const float* in, float* out, size_t count) {
  int c = (int)count;
  switch (coll) {
    case ALLGATHER:
      MPI_Allgather(in, c, MPI_FLOAT, out, c, MPI_FLOAT, MPI_COMM_WORLD);
      break;
    case REDUCESCATTER:
      MPI_Reduce_scatter_block(in, out, c, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      break;
    case ALLTOALL:
      MPI_Alltoall(in, c, MPI_FLOAT, out, c, MPI_FLOAT, MPI_COMM_WORLD);
      break;
    case BROADCAST:
      MPI_Bcast(out, c, MPI_FLOAT, 0, MPI_COMM_WORLD);
      break;
    case REDUCE:
      MPI_Reduce(in, out, c, MPI_FLOAT, MPI_SUM, 0, MPI_COMM_WORLD);
      break;
  }
}

/* Wrong elements of this rank's result. */
static size_t check(int coll, const float* out, size_t count, int rank, int n) {
  size_t bad = 0;
  switch (coll) {
    case ALLGATHER:
      for (int j = 0; j < n; j++)
        for (size_t i = 0; i < count; i++) bad += out[j * count + i] != value(j, i);
      break;
    case REDUCESCATTER:
      for (size_t i = 0; i < count; i++) {
        float want = 0;
        for (int j = 0; j < n; j++) want += value(j, rank * count + i);
        bad += out[i] != want;
      }
      break;
    case ALLTOALL:
      for (int j = 0; j < n; j++)
        for (size_t i = 0; i < count; i++) bad += out[j * count + i] != value(j, rank * count + i);
      break;
    case BROADCAST:
      for (size_t i = 0; i < count; i++) bad += out[i] != value(0, i);
      break;
    case REDUCE:
      if (rank == 0)
        for (size_t i = 0; i < count; i++) {
          float want = 0;
          for (int j = 0; j < n; j++) want += value(j, i);
          bad += out[i] != want;
        }
      break;
  }
  return bad;
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank, n;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  const char* names[] = {"allgather", "reducescatter", "alltoall", "broadcast", "reduce"};
  int coll = -1;
  for (int i = 0; argc > 1 && i < 5; i++)
    if (strcmp(argv[1], names[i]) == 0) coll = i;
  if (argc < 4 || coll < 0) {
    if (rank == 0)
      fprintf(stderr,
              "usage: %s allgather|reducescatter|alltoall|broadcast|reduce LABEL SIZES "
              "[TARGET_SEC] [MIN_IT] [MAX_IT]\n",
              argv[0]);
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  const char* label = argv[2];
  const double target = argc > 4 ? atof(argv[4]) : 1.0;
  const int minIt = argc > 5 ? atoi(argv[5]) : 5;
  const int maxIt = argc > 6 ? atoi(argv[6]) : 2000;
  const int blocked = coll == ALLGATHER || coll == REDUCESCATTER || coll == ALLTOALL;
  char* sizes = strdup(argv[3]);
  for (char* tok = strtok(sizes, ","); tok; tok = strtok(NULL, ",")) {
    size_t bytes = strtoull(tok, NULL, 10);
    size_t count = bytes / sizeof(float) / (blocked ? n : 1);
    if (count == 0) count = 1;
    size_t total = blocked ? count * n : count; /* elements of the whole buffer */
    size_t inElems = coll == ALLGATHER ? count : total;
    size_t outElems = coll == REDUCESCATTER ? count : total;
    float* in = malloc(inElems * sizeof(float));
    float* out = malloc(outElems * sizeof(float));
    for (size_t i = 0; i < inElems; i++) in[i] = value(rank, i);
    for (size_t i = 0; i < outElems; i++)
      out[i] = coll == BROADCAST && rank == 0 ? value(0, i) : -1;
    run(coll, in, out, count);
    size_t bad = check(coll, out, count, rank, n);
    if (bad) {
      fprintf(stderr, "rank %d %s bytes %zu: %zu WRONG elements\n", rank, names[coll], bytes, bad);
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
    const int warm = bytes >= (64u << 20) ? 1 : (bytes >= (1u << 20) ? 3 : 20);
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    for (int i = 0; i < warm; i++) run(coll, in, out, count);
    double per = (MPI_Wtime() - t0) / warm, perMax;
    MPI_Allreduce(&per, &perMax, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    int iters = (int)(target / (perMax > 1e-7 ? perMax : 1e-7));
    if (iters < minIt) iters = minIt;
    if (iters > maxIt) iters = maxIt;
    double* lap = malloc(sizeof(double) * iters);
    MPI_Barrier(MPI_COMM_WORLD);
    t0 = MPI_Wtime();
    for (int i = 0; i < iters; i++) {
      double l0 = MPI_Wtime();
      run(coll, in, out, count);
      lap[i] = MPI_Wtime() - l0;
    }
    double t = (MPI_Wtime() - t0) / iters;
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {
      qsort(lap, iters, sizeof(double), cmpd);
      double realBytes = (double)(total * sizeof(float));
      double algbw = realBytes / t / 1e9;
      double busbw = algbw * (blocked ? (double)(n - 1) / n : 1.0);
      printf("mpi,%s,%d,%.0f,%d,%.3f,%.4f,%.4f,%.3f,%.3f,%.3f\n", label, n, realBytes, iters,
             t * 1e6, algbw, busbw, lap[0] * 1e6, lap[iters / 2] * 1e6, lap[iters - 1] * 1e6);
      fflush(stdout);
    }
    free(lap);
    free(in);
    free(out);
  }
  free(sizes);
  MPI_Finalize();
  return 0;
}
