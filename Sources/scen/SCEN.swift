// `scen`: the operator CLI. Each subcommand lives in its own file.
import ArgumentParser

@main
struct SCEN: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scen",
        abstract: "Operate the SCEN model-editing system: run the model, check the stack.",
        subcommands: [
            TokenizeCommand.self, GenerateCommand.self, EvalCommand.self, BenchCommand.self,
            PingCommand.self, VersionCommand.self, MigrateCommand.self, PublishCommand.self, DumpActivationsCommand.self,
            TinyModelCommand.self,
        ]
    )
}
