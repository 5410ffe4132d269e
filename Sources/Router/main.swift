// scen-router: answers queries over HTTP with the base model plus the activated expert.
// The service is built in its own issue; until then this binary only says so.
import Foundation

FileHandle.standardError.write(Data("scen-router: answers queries over HTTP with the base model plus the activated expert; not part of this build yet.\n".utf8))
exit(2)
