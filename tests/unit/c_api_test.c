/* The public header compiled as strict C99 (-std=c99 -pedantic -Werror), and
 * the API's behaviour on bad input, from C. Exit code 0 = pass. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "chorus.h"

static int failures = 0;
#define EXPECT(cond)                                                                 \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      fprintf(stderr, "%s:%d: expectation failed: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                                    \
    }                                                                                \
  } while (0)

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(void) {
  chorusCommParams_t p;
  chorusComm_t comm = NULL;
  chorusCoordinatorParams_t cp;
  chorusCoordinator_t coord = NULL;
  int version = 0, i;
  float x[4] = {1, 2, 3, 4};
  double t0;

  for (i = 0; i < chorusNumResults; ++i) EXPECT(chorusGetErrorString((chorusResult_t)i) != NULL);
  EXPECT(strcmp(chorusGetErrorString((chorusResult_t)999), "unknown result code") == 0);
  EXPECT(chorusGetVersion(&version) == chorusSuccess && version == CHORUS_VERSION_CODE);
  EXPECT(chorusDataTypeSize(chorusBfloat16) == 2);
  EXPECT(chorusDataTypeSize((chorusDataType_t)77) == 0);

  /* Before chorusInit. */
  EXPECT(chorusCommParamsInit(&p) == chorusSuccess);
  p.coordinator = "127.0.0.1:1";
  EXPECT(chorusCommCreate(&p, &comm) == chorusNotInitialized);
  EXPECT(strstr(chorusGetLastError(NULL), "chorusInit") != NULL);
  EXPECT(chorusAllReduce(x, x, 4, chorusFloat32, chorusSum, NULL, NULL) == chorusNotInitialized);

  EXPECT(chorusInit() == chorusSuccess);
  EXPECT(chorusCommParamsInit(NULL) == chorusInvalidArgument);
  EXPECT(chorusCommCreate(NULL, &comm) == chorusInvalidArgument);
  EXPECT(chorusCommCreate(&p, NULL) == chorusInvalidArgument);

  p.coordinator = NULL;
  EXPECT(chorusCommCreate(&p, &comm) == chorusInvalidArgument);
  EXPECT(strstr(chorusGetLastError(NULL), "coordinator") != NULL);
  p.coordinator = "no-port-here";
  EXPECT(chorusCommCreate(&p, &comm) == chorusInvalidArgument);
  p.coordinator = "127.0.0.1:1";
  p.magic = 0;
  EXPECT(chorusCommCreate(&p, &comm) == chorusInvalidArgument);
  EXPECT(strstr(chorusGetLastError(NULL), "magic") != NULL);
  chorusCommParamsInit(&p);
  p.coordinator = "127.0.0.1:1";
  p.connectTimeoutMs = 1500;

  EXPECT(chorusCommCreate(&p, &comm) == chorusSuccess);
  /* Shared-state registry: argument checks (no traffic). */
  EXPECT(chorusStateRegister(NULL, "w", x, 4, chorusFloat32, 0) == chorusInvalidArgument);
  EXPECT(chorusStateRegister(comm, NULL, x, 4, chorusFloat32, 0) == chorusInvalidArgument);
  EXPECT(chorusStateRegister(comm, "w", NULL, 4, chorusFloat32, 0) == chorusInvalidArgument);
  EXPECT(chorusStateRegister(comm, "w", x, 4, (chorusDataType_t)77, 0) == chorusInvalidArgument);
  EXPECT(chorusStateRegister(comm, "w", x, 4, chorusFloat32, 0) == chorusSuccess);
  EXPECT(chorusStateRegister(comm, "w", x, 4, chorusFloat32, 0) == chorusInvalidArgument);
  EXPECT(chorusStateUnregister(comm, "nope") == chorusInvalidArgument);
  EXPECT(chorusStateUnregister(comm, "w") == chorusSuccess);
  EXPECT(chorusStateGetRevision(comm, NULL) == chorusInvalidArgument);
  /* Snapshots: argument checks. */
  EXPECT(chorusSnapshot(comm, 0, 2, NULL, NULL) == chorusInvalidArgument);
  EXPECT(chorusSnapshot(comm, 4, 0, NULL, NULL) == chorusInvalidArgument);
  EXPECT(chorusSnapshot(comm, 200, 100, NULL, NULL) == chorusInvalidArgument);
  EXPECT(chorusSnapshot(NULL, 4, 2, NULL, NULL) == chorusInvalidArgument);
  EXPECT(chorusSnapshotAsync(comm, 4, 2, NULL, NULL) == chorusInvalidArgument);
  EXPECT(chorusSnapshotLoad(comm, NULL, NULL) == chorusInvalidArgument);
  EXPECT(chorusSnapshotLoad(comm, "/nonexistent/chorus-dir", NULL) == chorusInvalidArgument);
  EXPECT(chorusSnapshotGetInfo(comm, NULL) == chorusInvalidArgument);
  {
    chorusSnapshotInfo_t si;
    memset(&si, 0, sizeof(si));
    EXPECT(chorusSnapshotGetInfo(comm, &si) == chorusInvalidArgument); /* size unset */
    si.size = sizeof(si);
    EXPECT(chorusSnapshotGetInfo(comm, &si) == chorusSuccess && si.snapshotId == 0);
  }
  EXPECT(chorusCommPeerId(comm, NULL) == chorusInvalidArgument);
  /* Codecs: argument checks and a local round trip. */
  {
    chorusCodecParams_t kp;
    chorusCodec_t codec = NULL;
    float v[300], back[300];
    unsigned char enc[2048];
    size_t need = 0;
    int i;
    for (i = 0; i < 300; ++i) v[i] = (float)(i % 7) - 3.0f;
    EXPECT(chorusCodecParamsInit(NULL, chorusCodecInt8) == chorusInvalidArgument);
    EXPECT(chorusCodecParamsInit(&kp, (chorusCodecKind_t)99) == chorusInvalidArgument);
    EXPECT(chorusCodecParamsInit(&kp, chorusCodecTopK) == chorusSuccess);
    kp.topkPerBlock = kp.blockSize + 1;
    EXPECT(chorusCodecCreate(&kp, &codec) == chorusInvalidArgument);
    EXPECT(chorusCodecParamsInit(&kp, chorusCodecUint8) == chorusSuccess);
    kp.blockSize = 0;
    EXPECT(chorusCodecCreate(&kp, &codec) == chorusInvalidArgument);
    kp.blockSize = 128;
    EXPECT(chorusCodecCreate(&kp, NULL) == chorusInvalidArgument);
    EXPECT(chorusCodecCreate(&kp, &codec) == chorusSuccess);
    EXPECT(chorusCodecEncodedBytes(codec, 300, &need) == chorusSuccess && need == 3 * 8 + 300);
    EXPECT(chorusCodecEncode(codec, v, 300, chorusFloat32, enc, need - 1) == chorusInvalidArgument);
    EXPECT(chorusCodecEncode(codec, v, 300, chorusInt32, enc, need) == chorusInvalidArgument);
    EXPECT(chorusCodecEncode(codec, v, 300, chorusFloat32, enc, need) == chorusSuccess);
    EXPECT(chorusCodecDecode(codec, enc, need - 1, back, 300, chorusFloat32) == chorusDataLoss);
    EXPECT(chorusCodecDecode(codec, enc, need, back, 300, chorusFloat32) == chorusSuccess);
    for (i = 0; i < 300; ++i) {
      float diff = back[i] - v[i];
      EXPECT(diff <= 6.0f / 255 / 2 * 1.001f && -diff <= 6.0f / 255 / 2 * 1.001f); /* half a step */
    }
    EXPECT(chorusAllReduceCompressed(v, back, 300, chorusFloat32, chorusSum, codec, NULL, NULL) ==
           chorusInvalidArgument);
    EXPECT(chorusAllReduceCompressed(v, back, 300, chorusFloat32, chorusMax, codec, comm, NULL) !=
           chorusSuccess);
    EXPECT(chorusCodecDestroy(codec) == chorusSuccess);
    EXPECT(chorusCodecDestroy(NULL) == chorusInvalidArgument);
  }
  /* Not connected yet. */
  EXPECT(chorusSyncSharedState(comm, chorusStateEnforcePopular, NULL) == chorusInvalidUsage);
  EXPECT(chorusAllReduce(x, x, 4, chorusFloat32, chorusSum, comm, NULL) == chorusInvalidUsage);
  EXPECT(strstr(chorusGetLastError(comm), "chorusCommConnect") != NULL);
  /* Unreachable coordinator: a clear error within the deadline, no hang. */
  t0 = now();
  EXPECT(chorusCommConnect(comm) == chorusUnavailable);
  EXPECT(now() - t0 < 5.0);
  EXPECT(strstr(chorusGetLastError(comm), "127.0.0.1:1") != NULL);
  fprintf(stderr, "unreachable coordinator: %s (%.2f s)\n", chorusGetLastError(comm), now() - t0);
  EXPECT(chorusCommDestroy(comm) == chorusSuccess);
  EXPECT(chorusCommDestroy(NULL) == chorusInvalidArgument);

  /* Coordinator parameters. */
  EXPECT(chorusCoordinatorParamsInit(&cp) == chorusSuccess);
  cp.bindAddress = "not an address";
  EXPECT(chorusCoordinatorStart(&cp, &coord) == chorusInvalidArgument);
  cp.bindAddress = "127.0.0.1:0";
  cp.failureTimeoutMs = 10;
  cp.heartbeatIntervalMs = 100;
  EXPECT(chorusCoordinatorStart(&cp, &coord) == chorusInvalidArgument);
  EXPECT(strstr(chorusGetLastError(NULL), "twice") != NULL);
  /* TLS with certificates but no files: refused at start, saying what is missing. */
  chorusCoordinatorParamsInit(&cp);
  cp.bindAddress = "127.0.0.1:0";
  cp.tls = chorusTlsCertificates;
  cp.tlsCert = NULL;
  EXPECT(chorusCoordinatorStart(&cp, &coord) == chorusInvalidArgument);
  EXPECT(strstr(chorusGetLastError(NULL), "CHORUS_TLS_CERT") != NULL);
  cp.tls = (chorusTlsMode_t)9;
  EXPECT(chorusCoordinatorStart(&cp, &coord) == chorusInvalidArgument);
  chorusCoordinatorParamsInit(&cp);
  cp.bindAddress = "127.0.0.1:0";
  EXPECT(chorusCoordinatorStart(&cp, &coord) == chorusSuccess);
  {
    char small[4];
    char addr[64];
    EXPECT(chorusCoordinatorGetAddress(coord, small, sizeof(small)) == chorusInvalidArgument);
    EXPECT(chorusCoordinatorGetAddress(coord, addr, sizeof(addr)) == chorusSuccess);
    EXPECT(strncmp(addr, "127.0.0.1:", 10) == 0);
  }
  EXPECT(chorusCoordinatorStop(coord) == chorusSuccess);
  EXPECT(chorusFinalize() == chorusSuccess);
  EXPECT(chorusFinalize() == chorusNotInitialized);

  if (failures) fprintf(stderr, "%d failure(s)\n", failures);
  return failures ? 1 : 0;
}
