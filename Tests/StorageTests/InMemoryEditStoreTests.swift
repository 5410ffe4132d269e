import EditStoreScenarios
import Storage
import Testing

@Suite("In-memory edit store (the twin of PostgresEditStore)")
struct InMemoryEditStoreTests {
    @Test func idempotentIngest() throws { try EditStoreScenarios.idempotentIngest(InMemoryEditStore()) }
    @Test func trainingLifecycle() throws { try EditStoreScenarios.trainingLifecycle(InMemoryEditStore()) }
    @Test func latestCorrectionWins() throws { try EditStoreScenarios.latestCorrectionWins(InMemoryEditStore()) }
    @Test func revert() throws { try EditStoreScenarios.revert(InMemoryEditStore()) }
    @Test func boundedRetries() throws { try EditStoreScenarios.boundedRetries(InMemoryEditStore()) }
    @Test func refinedNeurons() throws { try EditStoreScenarios.refinedNeuronsOnlyForActiveEdits(InMemoryEditStore()) }
    @Test func paging() throws { try EditStoreScenarios.paging(InMemoryEditStore()) }
    @Test func activeEditCache() throws { try EditStoreScenarios.activeEditCache(InMemoryEditStore()) }
    @Test func deadLetters() throws { try EditStoreScenarios.deadLetters(InMemoryEditStore()) }

    @Test func notificationsFollowStatusChanges() throws {
        let store = InMemoryEditStore()
        let a = try EditStoreScenarios.activate(store, EditStoreScenarios.correction("x1", at: 1), offset: 1)
        let b = try EditStoreScenarios.activate(store, EditStoreScenarios.correction("x2", at: 2), offset: 2)
        _ = try store.revert(editID: b.id, actor: "op", reason: "")
        #expect(store.notifications == [
            EditNotification(editID: a.id, status: .active),
            EditNotification(editID: a.id, status: .superseded),
            EditNotification(editID: b.id, status: .active),
            EditNotification(editID: b.id, status: .reverted),
        ])
        #expect(EditNotification.decode(EditNotification(editID: 7, status: .active).json) == EditNotification(editID: 7, status: .active))
    }
}
