// wire.h is header-only; this file keeps one translation unit per header so
// the library layout stays regular.
#include "src/protocol/wire.h"
