// scen-ingest: consumes correction events from Kafka and queues training jobs.
// The service is built in its own issue; until then this binary only says so.
import Foundation

FileHandle.standardError.write(Data("scen-ingest: consumes correction events from Kafka and queues training jobs; not part of this build yet.\n".utf8))
exit(2)
