/*
 * chorus.h - the Chorus C API (C99). The only header an application needs.
 *
 * Chorus is a fault-tolerant collective communication library: peers may join
 * a running job, crash or leave at any time, and the coordinator that admits
 * them holds only soft state.
 *
 * Conventions
 *  - Every function returns a chorusResult_t; chorusSuccess is 0.
 *  - On failure, chorusGetLastError(comm) (or chorusGetLastError(NULL) for
 *    calls without a communicator) returns a message that names the problem.
 *  - Handles are opaque. No function keeps a pointer to caller memory after
 *    it returns, except the buffers of an asynchronous operation, which must
 *    stay valid until the request completes.
 *  - Structs that may grow start with size, magic and version; initialise them
 *    with the matching ...ParamsInit function.
 *  - Threads: calls on one communicator may come from several threads at
 *    once (e.g. chorusWait on one thread while another starts operations),
 *    except chorusCommConnect and chorusCommDestroy, which must not overlap
 *    any other call on that communicator.
 *  - Joint calls (collectives, chorusPeersPending, chorusUpdateMembership)
 *    must be made by every member in the same order. A peer admitted by
 *    chorusUpdateMembership returns from chorusCommConnect where the members
 *    return from that update.
 */
#ifndef CHORUS_H_
#define CHORUS_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(CHORUS_BUILDING_LIBRARY)
#define CHORUS_API __attribute__((visibility("default")))
#else
#define CHORUS_API
#endif

#define CHORUS_MAJOR 0
#define CHORUS_MINOR 1
#define CHORUS_PATCH 0
/* Encoded as major * 10000 + minor * 100 + patch. */
#define CHORUS_VERSION_CODE (CHORUS_MAJOR * 10000 + CHORUS_MINOR * 100 + CHORUS_PATCH)

/* ------------------------------------------------------------------------- */
/* Results                                                                    */
/* ------------------------------------------------------------------------- */
typedef enum {
  chorusSuccess = 0,
  chorusInvalidArgument = 1, /* NULL pointer, unknown dtype/op, count overflow, bad params */
  chorusInvalidUsage = 2,    /* wrong call order, or peers disagree (count, dtype, op) */
  chorusNotInitialized = 3,  /* chorusInit was not called */
  chorusSystemError = 4,     /* an operating-system call failed */
  chorusInternalError = 5,   /* a bug in Chorus; please report it */
  chorusUnavailable = 6,     /* coordinator or peer unreachable; retrying may succeed */
  chorusAuthFailed = 7,      /* wrong run secret, or the other side failed to prove it */
  chorusTimeout = 8,         /* a deadline passed */
  chorusPeerLost = 9,        /* a peer failed during the operation; the communicator moved
                                to a new epoch and the operation may be retried */
  chorusRemoved = 10,        /* this peer is no longer a member (declared dead, or left);
                                destroy the communicator and create a new one to rejoin */
  chorusProtocolError = 11,  /* malformed, truncated, oversized or wrong-version message */
  chorusDataLoss = 12,       /* data failed verification */
  chorusOutOfMemory = 13,
  chorusUnsupported = 14, /* valid request this build or configuration cannot serve */
  chorusInProgress = 15,  /* asynchronous work has not finished yet */
  chorusNumResults = 16
} chorusResult_t;

/* A static string describing a result code. Never NULL. */
CHORUS_API const char* chorusGetErrorString(chorusResult_t result);

/* ------------------------------------------------------------------------- */
/* Library                                                                    */
/* ------------------------------------------------------------------------- */
/* Initialise the library. Must be called before any other function except
 * chorusGetVersion, chorusGetErrorString and the ...ParamsInit helpers.
 * Reference counted: each chorusInit needs one chorusFinalize. */
CHORUS_API chorusResult_t chorusInit(void);
/* Release library-wide resources once the last chorusInit is matched. All
 * communicators and coordinators must have been destroyed. */
CHORUS_API chorusResult_t chorusFinalize(void);
/* CHORUS_VERSION_CODE of the library actually loaded. */
CHORUS_API chorusResult_t chorusGetVersion(int* version);

/* ------------------------------------------------------------------------- */
/* Types                                                                      */
/* ------------------------------------------------------------------------- */
typedef enum {
  chorusInt8 = 0,
  chorusUint8 = 1,
  chorusInt32 = 2,
  chorusUint32 = 3,
  chorusInt64 = 4,
  chorusUint64 = 5,
  chorusFloat16 = 6,  /* IEEE binary16; reduced in fp32 and rounded once */
  chorusBfloat16 = 7, /* bfloat16; reduced in fp32 and rounded once */
  chorusFloat32 = 8,
  chorusFloat64 = 9,
  chorusInt16 = 10,
  chorusNumDataTypes = 11
} chorusDataType_t;

typedef enum {
  chorusSum = 0,
  chorusProd = 1,
  chorusMax = 2,
  chorusMin = 3,
  chorusAvg = 4, /* sum divided by the number of contributing peers (integers: truncated) */
  chorusNumRedOps = 5
} chorusRedOp_t;

/* Size in bytes of one element of dtype, or 0 if dtype is unknown. */
CHORUS_API size_t chorusDataTypeSize(chorusDataType_t dtype);

typedef struct chorusComm* chorusComm_t;
typedef struct chorusRequest* chorusRequest_t;
typedef struct chorusCoordinator* chorusCoordinator_t;

/* ------------------------------------------------------------------------- */
/* Coordinator                                                                */
/* ------------------------------------------------------------------------- */
/* TLS 1.3 on every link of a job: peer to peer and peer to coordinator
 * (chorusCommParams_t.tls, chorusCoordinatorParams_t.tls). */
typedef enum {
  chorusTlsOff = 0,          /* plaintext (links are still authenticated by the run secret) */
  chorusTlsSecret = 1,       /* a key derived from the run secret; nothing else to set up */
  chorusTlsCertificates = 2, /* tlsCert/tlsKey, checked against tlsCa in both directions */
} chorusTlsMode_t;

#define CHORUS_COORDINATOR_PARAMS_MAGIC 0x43436F50u /* "CCoP" */
#define CHORUS_COORDINATOR_PARAMS_VERSION 2u

typedef struct {
  size_t size;      /* sizeof(chorusCoordinatorParams_t) */
  uint32_t magic;   /* CHORUS_COORDINATOR_PARAMS_MAGIC */
  uint32_t version; /* CHORUS_COORDINATOR_PARAMS_VERSION */
  /* "host:port" to listen on; port 0 picks a free port. Default "0.0.0.0:0",
   * or CHORUS_COORDINATOR_BIND. */
  const char* bindAddress;
  /* Run secret peers must prove they know. Default: CHORUS_SECRET. */
  const char* secret;
  /* Heartbeat period peers are told to use, ms. Default 100. */
  int heartbeatIntervalMs;
  /* A member silent for this long is declared dead, ms. Default 1000. */
  int failureTimeoutMs;
  /* How long a new view may take to become ready (connections opened) before
   * members that are not ready are removed, ms. Default 10000. */
  int viewSetupTimeoutMs;
  /* After a (re)start, how long to wait for the members of a running job to
   * re-register before members that did not are removed, ms. Default 2000. */
  int recoveryGraceMs;
  /* 0 = auto (majority of the previous view when peers know of a standby
   * coordinator, else any), 1 = always majority, 2 = any survivors. */
  int quorumPolicy;
  /* Version 2. TLS 1.3 on the links peers open to this coordinator; must be
   * the mode the peers use (a peer with another mode is refused, saying
   * so). Default: CHORUS_TLS, CHORUS_TLS_CERT, CHORUS_TLS_KEY, CHORUS_TLS_CA.
   * In secret mode the key comes from `secret`. */
  chorusTlsMode_t tls;
  const char* tlsCert;
  const char* tlsKey;
  const char* tlsCa;
} chorusCoordinatorParams_t;

/* Fill *params with defaults (and CHORUS_* environment overrides). */
CHORUS_API chorusResult_t chorusCoordinatorParamsInit(chorusCoordinatorParams_t* params);
/* Start a coordinator inside this process (threads of its own). */
CHORUS_API chorusResult_t chorusCoordinatorStart(const chorusCoordinatorParams_t* params,
                                                 chorusCoordinator_t* coordinator);
/* The "host:port" the coordinator listens on (the real port when 0 was asked). */
CHORUS_API chorusResult_t chorusCoordinatorGetAddress(chorusCoordinator_t coordinator, char* buffer,
                                                      size_t length);
/* Stop the coordinator and free it. Peers keep running and re-register when a
 * coordinator comes back on one of their addresses. */
CHORUS_API chorusResult_t chorusCoordinatorStop(chorusCoordinator_t coordinator);

/* ------------------------------------------------------------------------- */
/* Communicator                                                               */
/* ------------------------------------------------------------------------- */
#define CHORUS_COMM_PARAMS_MAGIC 0x43436D50u /* "CCmP" */
#define CHORUS_COMM_PARAMS_VERSION 3u        /* 2: locality; 3: TLS */

typedef struct {
  size_t size;      /* sizeof(chorusCommParams_t) */
  uint32_t magic;   /* CHORUS_COMM_PARAMS_MAGIC */
  uint32_t version; /* CHORUS_COMM_PARAMS_VERSION */
  /* Coordinator "host:port", or a comma-separated list (primary first, then
   * standbys). Default: CHORUS_COORDINATOR. Required. */
  const char* coordinator;
  /* Run secret (never sent on the wire; proven by HMAC challenge-response).
   * Default: CHORUS_SECRET, else empty. */
  const char* secret;
  /* Peer group: peers with the same group form one job. Default "default",
   * or CHORUS_GROUP. */
  const char* group;
  /* Size of the first view: the job starts when this many peers of the group
   * have connected. A peer that arrives once the job runs waits as pending
   * until the members call chorusUpdateMembership. Default 1, or
   * CHORUS_EXPECTED_PEERS. */
  int expectedPeers;
  /* TCP connections per peer pair (transfers are striped over them).
   * Default 1, or CHORUS_CONNECTIONS_PER_PEER (a number, or "auto").
   * CHORUS_CONNECTIONS_ADAPTIVE: a pool of CHORUS_MAX_CONNECTIONS_PER_PEER
   * (default 16) of which as many are used as raise the pair's measured
   * throughput (for long fat WAN links). */
  int connectionsPerPeer;
  /* Deadline of chorusCommConnect, ms. Default 60000, or CHORUS_CONNECT_TIMEOUT_MS. */
  int connectTimeoutMs;
  /* Deadline of one collective once every peer has called it, ms; bounds
   * waiting for a peer that never calls. Default 60000, or CHORUS_OP_TIMEOUT_MS. */
  int opTimeoutMs;
  /* Host or IP other peers use to reach this one. Default: the local address
   * of the connection to the coordinator, or CHORUS_LISTEN_HOST. */
  const char* listenHost;
  /* Where this peer runs, for hierarchical algorithms: "host=a,rack=r1,dc=eu"
   * (any subset). host defaults to this machine (hostname + boot id); peers
   * with equal host labels are treated as sharing a machine. Default:
   * CHORUS_LOCALITY. */
  const char* locality;
  /* Version 3. Encrypt every link (data links: tensors, snapshots; the
   * coordinator link: membership) with TLS 1.3 and authenticate both ends
   * with it. Every peer and coordinator of a job must use the same mode; a
   * peer with another secret, no certificate or one from another CA is
   * refused with an authentication error. Default: CHORUS_TLS
   * (off | secret | cert). */
  chorusTlsMode_t tls;
  const char* tlsCert; /* PEM certificate chain of this peer. Default: CHORUS_TLS_CERT */
  const char* tlsKey;  /* PEM private key of tlsCert. Default: CHORUS_TLS_KEY */
  const char* tlsCa;   /* PEM CA(s) peers' certificates must chain to. Default: CHORUS_TLS_CA */
} chorusCommParams_t;

/* chorusCommParams_t.connectionsPerPeer: a pool adapted to the link. */
#define CHORUS_CONNECTIONS_ADAPTIVE (-1)

/* Fill *params with defaults (and CHORUS_* environment overrides). */
CHORUS_API chorusResult_t chorusCommParamsInit(chorusCommParams_t* params);

/* Create a communicator handle; no network traffic yet. Strings in params are
 * copied. */
CHORUS_API chorusResult_t chorusCommCreate(const chorusCommParams_t* params, chorusComm_t* comm);
/* Register with the coordinator, authenticate, wait until admitted to a view
 * and connect to the other members. Blocks up to connectTimeoutMs. On
 * chorusUnavailable or chorusTimeout it may be called again. */
CHORUS_API chorusResult_t chorusCommConnect(chorusComm_t comm);
/* Leave the group gracefully (if connected) and free the communicator.
 * Pending requests complete with an error first. */
CHORUS_API chorusResult_t chorusCommDestroy(chorusComm_t comm);

/* Rank of this peer in the current view (0 .. worldSize-1). */
CHORUS_API chorusResult_t chorusCommRank(chorusComm_t comm, int* rank);
/* Number of members of the current view. */
CHORUS_API chorusResult_t chorusCommWorldSize(chorusComm_t comm, int* worldSize);
/* Epoch of the current view; it only grows. */
CHORUS_API chorusResult_t chorusCommEpoch(chorusComm_t comm, uint64_t* epoch);
/* This peer's id: unique in the job, stable across view changes (ranks are
 * not). Names a departed peer in chorusRecover(adoptPeerId). */
CHORUS_API chorusResult_t chorusCommPeerId(chorusComm_t comm, uint64_t* peerId);
/* The first asynchronous error recorded on the communicator (sticky), or
 * chorusSuccess. */
CHORUS_API chorusResult_t chorusCommGetAsyncError(chorusComm_t comm, chorusResult_t* asyncError);

/* Message describing the last failure of a call on comm (or, with comm NULL,
 * of the last call without a communicator on this thread). Never NULL; valid
 * until the next call on the same communicator / thread. */
CHORUS_API const char* chorusGetLastError(chorusComm_t comm);

/* ------------------------------------------------------------------------- */
/* Membership (dynamic peers)                                                 */
/* ------------------------------------------------------------------------- */
/* Joint call (every member calls it): sets *pending to the number of
 * membership changes waiting to be applied (peers waiting to join plus
 * members that announced they leave). Every member gets the same value, so a
 * training loop can call chorusUpdateMembership only when it is non-zero. */
CHORUS_API chorusResult_t chorusPeersPending(chorusComm_t comm, int* pending);
/* Joint call: admit pending peers and remove members that announced they
 * leave; opens the connections the new view needs. No operation may be in
 * flight. Returns once the new view is in place on this peer. */
CHORUS_API chorusResult_t chorusUpdateMembership(chorusComm_t comm);
/* Local call: this peer will leave at the next chorusUpdateMembership (it
 * then returns chorusSuccess and the communicator reports chorusRemoved). */
CHORUS_API chorusResult_t chorusAnnounceLeave(chorusComm_t comm);

/* ------------------------------------------------------------------------- */
/* All-reduce                                                                 */
/* ------------------------------------------------------------------------- */
/* Filled by collectives when the caller passes a non-NULL pointer. */
typedef struct {
  size_t size;            /* sizeof(chorusOpInfo_t); set by the caller */
  int contributors;       /* peers whose data the result holds */
  int attempts;           /* tries it took (retry helpers; 1 otherwise) */
  uint64_t epoch;         /* epoch the operation completed in */
  uint64_t bytesSent;     /* bytes this peer put on the wire for the operation */
  uint64_t bytesReceived; /* bytes this peer received for the operation */
  char algorithm[24];     /* name of the algorithm that ran */
} chorusOpInfo_t;

/* Blocking all-reduce. sendbuf == recvbuf is allowed (in place). Every peer
 * ends with bit-identical bytes in recvbuf. If the operation fails, recvbuf
 * is undefined (and sendbuf too when in place). */
CHORUS_API chorusResult_t chorusAllReduce(const void* sendbuf, void* recvbuf, size_t count,
                                          chorusDataType_t dtype, chorusRedOp_t op,
                                          chorusComm_t comm, chorusOpInfo_t* info);

/* Asynchronous all-reduce. Operations are matched across peers by tag and,
 * within a tag, by call order; concurrent operations need distinct tags
 * (or must be issued in the same order on every peer). */
CHORUS_API chorusResult_t chorusAllReduceAsync(const void* sendbuf, void* recvbuf, size_t count,
                                               chorusDataType_t dtype, chorusRedOp_t op,
                                               uint64_t tag, chorusComm_t comm,
                                               chorusRequest_t* request);

/* All-reduce that retries in the new view when a peer is lost, up to
 * maxAttempts tries (0 = 8). info->contributors tells how many peers the
 * final result sums over. In-place calls copy the input first. */
CHORUS_API chorusResult_t chorusAllReduceWithRetry(const void* sendbuf, void* recvbuf, size_t count,
                                                   chorusDataType_t dtype, chorusRedOp_t op,
                                                   int maxAttempts, chorusComm_t comm,
                                                   chorusOpInfo_t* info);

/* ------------------------------------------------------------------------- */
/* Other collectives (NCCL semantics; blocking, and asynchronous with a tag)  */
/* ------------------------------------------------------------------------- */
/* Counts are in elements. Ranks are ranks of the current view. Unless noted,
 * recvbuf must not overlap sendbuf except as the in-place form given. */

/* Copy root's sendbuf (count elements) into every rank's recvbuf. sendbuf is
 * read on root only; in place: sendbuf == recvbuf. */
CHORUS_API chorusResult_t chorusBroadcast(const void* sendbuf, void* recvbuf, size_t count,
                                          chorusDataType_t dtype, int root, chorusComm_t comm,
                                          chorusOpInfo_t* info);
/* Reduce every rank's sendbuf into root's recvbuf (used on root only).
 * In place: sendbuf == recvbuf on root. */
CHORUS_API chorusResult_t chorusReduce(const void* sendbuf, void* recvbuf, size_t count,
                                       chorusDataType_t dtype, chorusRedOp_t op, int root,
                                       chorusComm_t comm, chorusOpInfo_t* info);
/* recvbuf (worldSize * sendcount elements) gets every rank's sendbuf in rank
 * order. In place: sendbuf == recvbuf + rank * sendcount (element offset). */
CHORUS_API chorusResult_t chorusAllGather(const void* sendbuf, void* recvbuf, size_t sendcount,
                                          chorusDataType_t dtype, chorusComm_t comm,
                                          chorusOpInfo_t* info);
/* Reduce sendbuf (worldSize * recvcount elements) across ranks; rank r gets
 * block r in recvbuf. In place: recvbuf == sendbuf + rank * recvcount. */
CHORUS_API chorusResult_t chorusReduceScatter(const void* sendbuf, void* recvbuf, size_t recvcount,
                                              chorusDataType_t dtype, chorusRedOp_t op,
                                              chorusComm_t comm, chorusOpInfo_t* info);
/* Block j of sendbuf (count elements each) goes to rank j, which stores it as
 * block (sender's rank) of recvbuf. No in-place form. */
CHORUS_API chorusResult_t chorusAllToAll(const void* sendbuf, void* recvbuf, size_t count,
                                         chorusDataType_t dtype, chorusComm_t comm,
                                         chorusOpInfo_t* info);
/* Like chorusAllToAll with per-rank counts and displacements (elements):
 * sendcounts[j] elements at sendbuf + sdispls[j] go to rank j, which must
 * expect recvcounts[i] == that number from this rank i at recvbuf + rdispls[i].
 * Arrays have worldSize entries; zero counts are allowed. */
CHORUS_API chorusResult_t chorusAllToAllv(const void* sendbuf, const size_t* sendcounts,
                                          const size_t* sdispls, void* recvbuf,
                                          const size_t* recvcounts, const size_t* rdispls,
                                          chorusDataType_t dtype, chorusComm_t comm,
                                          chorusOpInfo_t* info);
/* root's recvbuf (worldSize * count) gets every rank's sendbuf in rank order.
 * In place on root: sendbuf == recvbuf + root * count. */
CHORUS_API chorusResult_t chorusGather(const void* sendbuf, void* recvbuf, size_t count,
                                       chorusDataType_t dtype, int root, chorusComm_t comm,
                                       chorusOpInfo_t* info);
/* Block j of root's sendbuf (worldSize * count) goes to rank j's recvbuf.
 * In place on root: recvbuf == sendbuf + root * count. */
CHORUS_API chorusResult_t chorusScatter(const void* sendbuf, void* recvbuf, size_t count,
                                        chorusDataType_t dtype, int root, chorusComm_t comm,
                                        chorusOpInfo_t* info);
/* Returns on every rank only after every rank entered it. */
CHORUS_API chorusResult_t chorusBarrier(chorusComm_t comm);

/* Asynchronous forms: same arguments plus a tag (see chorusAllReduceAsync)
 * and a request completed with chorusTest / chorusWait. */
CHORUS_API chorusResult_t chorusBroadcastAsync(const void* sendbuf, void* recvbuf, size_t count,
                                               chorusDataType_t dtype, int root, uint64_t tag,
                                               chorusComm_t comm, chorusRequest_t* request);
CHORUS_API chorusResult_t chorusReduceAsync(const void* sendbuf, void* recvbuf, size_t count,
                                            chorusDataType_t dtype, chorusRedOp_t op, int root,
                                            uint64_t tag, chorusComm_t comm,
                                            chorusRequest_t* request);
CHORUS_API chorusResult_t chorusAllGatherAsync(const void* sendbuf, void* recvbuf, size_t sendcount,
                                               chorusDataType_t dtype, uint64_t tag,
                                               chorusComm_t comm, chorusRequest_t* request);
CHORUS_API chorusResult_t chorusReduceScatterAsync(const void* sendbuf, void* recvbuf,
                                                   size_t recvcount, chorusDataType_t dtype,
                                                   chorusRedOp_t op, uint64_t tag,
                                                   chorusComm_t comm, chorusRequest_t* request);
CHORUS_API chorusResult_t chorusAllToAllAsync(const void* sendbuf, void* recvbuf, size_t count,
                                              chorusDataType_t dtype, uint64_t tag,
                                              chorusComm_t comm, chorusRequest_t* request);
CHORUS_API chorusResult_t chorusAllToAllvAsync(const void* sendbuf, const size_t* sendcounts,
                                               const size_t* sdispls, void* recvbuf,
                                               const size_t* recvcounts, const size_t* rdispls,
                                               chorusDataType_t dtype, uint64_t tag,
                                               chorusComm_t comm, chorusRequest_t* request);
CHORUS_API chorusResult_t chorusGatherAsync(const void* sendbuf, void* recvbuf, size_t count,
                                            chorusDataType_t dtype, int root, uint64_t tag,
                                            chorusComm_t comm, chorusRequest_t* request);
CHORUS_API chorusResult_t chorusScatterAsync(const void* sendbuf, void* recvbuf, size_t count,
                                             chorusDataType_t dtype, int root, uint64_t tag,
                                             chorusComm_t comm, chorusRequest_t* request);
CHORUS_API chorusResult_t chorusBarrierAsync(uint64_t tag, chorusComm_t comm,
                                             chorusRequest_t* request);

/* ------------------------------------------------------------------------- */
/* Point to point                                                             */
/* ------------------------------------------------------------------------- */
/* Send count elements to rank peer / receive count elements from rank peer.
 * Matched per peer pair and tag (< 2^31) in call order. A send completes when
 * the receiver holds the data. Calls between chorusGroupStart and
 * chorusGroupEnd are only queued; chorusGroupEnd issues them all and waits
 * for all of them, so a ring of sends and receives cannot deadlock. Outside
 * a group each call is a group of one. */
CHORUS_API chorusResult_t chorusSend(const void* sendbuf, size_t count, chorusDataType_t dtype,
                                     int peer, uint32_t tag, chorusComm_t comm);
CHORUS_API chorusResult_t chorusRecv(void* recvbuf, size_t count, chorusDataType_t dtype, int peer,
                                     uint32_t tag, chorusComm_t comm);
/* Groups nest; only the outermost chorusGroupEnd issues. Per thread. */
CHORUS_API chorusResult_t chorusGroupStart(void);
/* Issues and waits for everything queued since the outermost chorusGroupStart;
 * returns the first failure. */
CHORUS_API chorusResult_t chorusGroupEnd(void);

/* ------------------------------------------------------------------------- */
/* Compression                                                                */
/* ------------------------------------------------------------------------- */
/* Codecs work on blocks of blockSize values, each with its own scale, so one
 * outlier does not flatten a whole buffer. Formats and the NaN/Inf policy
 * (a block holding NaN or an infinity decodes to NaN) are in docs. */
typedef enum {
  chorusCodecUint8 = 0,   /* min-max (zero point + scale) to 8 bits */
  chorusCodecInt8 = 1,    /* symmetric, scale = max|x| / 127 */
  chorusCodecInt4 = 2,    /* symmetric, scale = max|x| / 7, two per byte */
  chorusCodecFp8E4M3 = 3, /* scaled to the fp8 range, OCP E4M3 */
  chorusCodecFp8E5M2 = 4, /* scaled to the fp8 range, OCP E5M2 */
  chorusCodecOneBit = 5,  /* sign + mean |x| per block */
  chorusCodecTopK = 6,    /* the topkPerBlock largest |x| per block (ties: lower index) */
  /* topkPerBlock per blockSize values, chosen across the whole buffer (each
   * chunk of a compressed all-reduce) instead of per block: a buffer whose
   * large values cluster keeps them all. 8 bytes per kept value (32-bit
   * index); host buffers only. */
  chorusCodecTopKGlobal = 7,
  chorusNumCodecs = 8
} chorusCodecKind_t;

typedef struct {
  size_t size; /* sizeof(chorusCodecParams_t) */
  chorusCodecKind_t kind;
  uint32_t blockSize;     /* values per block, 1..65536 (default 256) */
  uint32_t topkPerBlock;  /* top-k: values kept per block, or per blockSize values for
                             chorusCodecTopKGlobal (default blockSize/32) */
  int stochasticRounding; /* quantizers: 1 = stochastic from seed, 0 = to nearest even */
  uint64_t seed;          /* stochastic rounding stream (the same on every peer) */
  int errorFeedback;      /* keep what compression dropped and add it next call
                             (default: on for one-bit and top-k, off otherwise) */
} chorusCodecParams_t;

typedef struct chorusCodec* chorusCodec_t;

CHORUS_API chorusResult_t chorusCodecParamsInit(chorusCodecParams_t* params,
                                                chorusCodecKind_t kind);
/* A codec object carries its error-feedback residuals across calls; keep one
 * per buffer you all-reduce. Not shared by concurrent calls. */
CHORUS_API chorusResult_t chorusCodecCreate(const chorusCodecParams_t* params,
                                            chorusCodec_t* codec);
CHORUS_API chorusResult_t chorusCodecDestroy(chorusCodec_t codec);
/* Forget the residuals (e.g. after loading a checkpoint). */
CHORUS_API chorusResult_t chorusCodecReset(chorusCodec_t codec);
/* Bytes the encoding of count values takes. */
CHORUS_API chorusResult_t chorusCodecEncodedBytes(chorusCodec_t codec, size_t count, size_t* bytes);
/* Local encode/decode (no error feedback). Host buffers: float, half or
 * bfloat16 values, on the CPU. CUDA device buffers (both): float values, on
 * the GPU, with the same bytes as the CPU. Decoding checks the length and
 * rounds once to dtype. */
CHORUS_API chorusResult_t chorusCodecEncode(chorusCodec_t codec, const void* values, size_t count,
                                            chorusDataType_t dtype, void* out, size_t outBytes);
CHORUS_API chorusResult_t chorusCodecDecode(chorusCodec_t codec, const void* in, size_t inBytes,
                                            void* values, size_t count, chorusDataType_t dtype);
/* Compressed all-reduce (sum or avg of float, half or bfloat16), two-phase:
 * each peer compresses chunk j of its input for its owner j; the owner
 * decodes and sums in fp32, compresses the sum once, and every peer decodes
 * those published bytes, so every peer ends with identical bytes.
 * info->bytesSent / bytesReceived report the compressed bytes on the wire. */
CHORUS_API chorusResult_t chorusAllReduceCompressed(const void* sendbuf, void* recvbuf,
                                                    size_t count, chorusDataType_t dtype,
                                                    chorusRedOp_t op, chorusCodec_t codec,
                                                    chorusComm_t comm, chorusOpInfo_t* info);

/* ------------------------------------------------------------------------- */
/* Shared state                                                               */
/* ------------------------------------------------------------------------- */
/* Named buffers (weights, optimizer state, counters) that every peer of
 * the job must hold bit-identically, with one revision number per peer.
 * Every peer registers the same names with the same dtypes and counts (a
 * joiner allocates them and registers before syncing). Buffers registered
 * with CHORUS_STATE_NO_EQUALITY (per-peer RNG state, ...) are never compared
 * or transferred. The registry and buffers must not change during a sync. */
#define CHORUS_STATE_NO_EQUALITY 1u
/* The buffer is CUDA device (or managed) memory of the current device. It is
 * hashed on the GPU with the same XXH3-64 as host buffers (so a GPU peer and
 * a CPU peer agree on the state) and moved through host staging copies.
 * chorusUnsupported if this build or machine has no CUDA. */
#define CHORUS_STATE_CUDA_DEVICE 2u
typedef enum {
  chorusStateEnforcePopular = 0, /* vote; take the group's state if different */
  chorusStateReceiveOnly = 1,    /* never vote (a joiner); take the group's state */
  chorusStateSendOnly = 2        /* vote; never overwritten: the sync fails on every
                                    peer if this peer's state is not the group's */
} chorusStateStrategy_t;

typedef struct {
  size_t size;            /* sizeof(chorusStateSyncInfo_t) */
  uint64_t revision;      /* the group's revision (now this peer's too) */
  uint64_t stateHash;     /* XXH3-64 over the chunk hashes of the compared buffers */
  int rounds;             /* transfer rounds: 0 if all agreed, 1 unless peers failed */
  int peersUpdated;       /* peers that did not hold the group's state */
  uint64_t bytesSent;     /* by this peer */
  uint64_t bytesReceived; /* by this peer */
} chorusStateSyncInfo_t;

CHORUS_API chorusResult_t chorusStateRegister(chorusComm_t comm, const char* name, void* buffer,
                                              size_t count, chorusDataType_t dtype, unsigned flags);
CHORUS_API chorusResult_t chorusStateUnregister(chorusComm_t comm, const char* name);
CHORUS_API chorusResult_t chorusStateSetRevision(chorusComm_t comm, uint64_t revision);
CHORUS_API chorusResult_t chorusStateGetRevision(chorusComm_t comm, uint64_t* revision);
/* Joint call. Peers hash their buffers in 1 MiB chunks; the group agrees on
 * the most popular (state, revision) among voters (ties: higher revision,
 * then lower rank); peers that differ receive only the chunks that differ,
 * spread over all up-to-date peers in parallel, each chunk verified by hash.
 * A sender that dies mid-transfer is replaced in the next round without
 * re-sending verified chunks. All peers return the same result. info may be
 * NULL. */
CHORUS_API chorusResult_t chorusSyncSharedState(chorusComm_t comm, chorusStateStrategy_t strategy,
                                                chorusStateSyncInfo_t* info);

/* ------------------------------------------------------------------------- */
/* Erasure-coded snapshots                                                    */
/* ------------------------------------------------------------------------- */
/* A snapshot is a point-in-time copy of the registered shared state: the
 * replicated buffers once, plus every peer's CHORUS_STATE_NO_EQUALITY
 * buffers. It is cut into k data shards plus m Reed-Solomon parity shards
 * (Intel ISA-L, Cauchy matrix), one shard per member (rank i holds shard i;
 * k + m <= members), each with an XXH3-64 hash in a manifest every member
 * keeps. Any k intact shards rebuild the exact bytes.
 *
 * After a membership update (chorusUpdateMembership / a joiner's
 * chorusCommConnect) every member re-protects in the background: shards whose
 * holder left are rebuilt on members that hold none (a joiner), so the next
 * failure is survivable too. chorusSnapshotProtect does the same on demand
 * (e.g. onto spare members after a crash). */
typedef struct {
  size_t size;            /* sizeof(chorusSnapshotInfo_t) */
  uint64_t snapshotId;    /* 0: no snapshot */
  uint64_t revision;      /* the state revision the snapshot holds */
  int dataShards;         /* k */
  int parityShards;       /* m */
  uint64_t stateBytes;    /* bytes of all sections */
  uint64_t shardBytes;    /* bytes of one shard */
  int shardsHeld;         /* by this peer after the call */
  int shardsLost;         /* without an intact holder when the call started */
  int shardsCorrupt;      /* detected by hash and excluded */
  int shardsRebuilt;      /* re-placed on new holders by the call */
  int shardsMissing;      /* still without a holder (no member was free) */
  uint64_t bytesSent;     /* by this peer */
  uint64_t bytesReceived; /* by this peer */
  double codecSeconds;    /* this peer's encode (snapshot) or decode time */
} chorusSnapshotInfo_t;

/* Joint call: snapshot the registered state (every peer must hold the same
 * replicated state and revision: call chorusSyncSharedState first) into
 * dataShards + parityShards shards. The previous snapshot is dropped once
 * the new one is complete. spillDirectory (may be NULL) also writes this
 * peer's shards and the manifest there as files (written to a temporary name,
 * fsync'd, renamed). info may be NULL. */
CHORUS_API chorusResult_t chorusSnapshot(chorusComm_t comm, int dataShards, int parityShards,
                                         const char* spillDirectory, chorusSnapshotInfo_t* info);
/* The same, overlapping the caller's compute: completes through chorusTest /
 * chorusWait (chorusOpInfo_t reports the bytes). The buffers must not change
 * until it completes. */
CHORUS_API chorusResult_t chorusSnapshotAsync(chorusComm_t comm, int dataShards, int parityShards,
                                              const char* spillDirectory, chorusRequest_t* request);
/* Joint call: rebuild the snapshot from any k intact shards (corrupt shards
 * are excluded and counted), write its replicated buffers and revision into
 * every member's registered buffers, and this peer's own private buffers
 * (or those of adoptPeerId, a departed peer whose place a joiner takes; 0 =
 * this peer). Lost shards are re-placed on members holding none. Fails with
 * chorusDataLoss, naming the lost and corrupt shards, when fewer than k
 * survive (more than m lost). */
CHORUS_API chorusResult_t chorusRecover(chorusComm_t comm, uint64_t adoptPeerId,
                                        chorusSnapshotInfo_t* info);
/* Joint call: re-protect now (see above). chorusDataLoss if fewer than k
 * shards survive. */
CHORUS_API chorusResult_t chorusSnapshotProtect(chorusComm_t comm, chorusSnapshotInfo_t* info);
/* Local: adopt the newest snapshot spilled to directory (manifest plus every
 * shard file that verifies; damaged files are excluded and counted as
 * corrupt). A following chorusRecover restores it: a whole job can restart
 * from files. */
CHORUS_API chorusResult_t chorusSnapshotLoad(chorusComm_t comm, const char* directory,
                                             chorusSnapshotInfo_t* info);
/* Local: the snapshot this peer holds (shardsHeld, ids, sizes). */
CHORUS_API chorusResult_t chorusSnapshotGetInfo(chorusComm_t comm, chorusSnapshotInfo_t* info);

/* ------------------------------------------------------------------------- */
/* Topology                                                                   */
/* ------------------------------------------------------------------------- */
/* Joint call: measure latency and bandwidth between every pair of members
 * and reorder the ring used by ring algorithms to maximise its slowest link.
 * Every member ends with the same measurements and the same order. */
CHORUS_API chorusResult_t chorusOptimizeTopology(chorusComm_t comm);
/* Describe the algorithm chosen per collective and size for the current view
 * (and measured topology) into buffer, as text. */
CHORUS_API chorusResult_t chorusDescribeSelection(chorusComm_t comm, char* buffer, size_t length);

/* Poll a request. *done = 1 when it finished; the request is then freed,
 * *request set to NULL and the operation's result returned. */
CHORUS_API chorusResult_t chorusTest(chorusRequest_t* request, int* done, chorusOpInfo_t* info);
/* Wait for a request to finish; frees it and sets *request to NULL. */
CHORUS_API chorusResult_t chorusWait(chorusRequest_t* request, chorusOpInfo_t* info);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* CHORUS_H_ */
