// scen-trainer: trains SCEN experts and indexing neurons for queued edits.
// The service is built in its own issue; until then this binary only says so.
import Foundation

FileHandle.standardError.write(Data("scen-trainer: trains SCEN experts and indexing neurons for queued edits; not part of this build yet.\n".utf8))
exit(2)
