// `scen eval`: the sequential-editing benchmark (Core/Eval/EditEvaluation.swift) on a normalised
// JSONL file (EditBenchmark.swift), or the long-form passage benchmark on a folder
// (PassageEvaluation.swift). Progress on stderr; the report JSON is written to --report and
// printed as the last line of stdout.

import ArgumentParser
import Core
import Foundation

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval", abstract: "Apply T edits sequentially (SCEN, FT-L or none) and report reliability, generality, locality.")

    @Option(help: "qa (ZsRE or CounterFact, one JSONL file) | hallucination (long-form passages, a folder).")
    var benchmark: Benchmark = .qa
    @Option(help: "JSONL benchmark file (ZsRE or CounterFact format), or the hallucination folder.") var data: String
    @Option(help: "Number of edits T (the first T cases after --offset).") var limit: Int = 100
    @Option(help: "Cases to skip first.") var offset: Int = 0
    @Option(help: "scen | ft | grace | none") var method: EditMethod = .scen
    @Option(name: .customLong("grace-epsilon"), help: "GRACE: the initial ε-ball radius (Euclidean, in layer L's down-projection input).")
    var graceEpsilon: Float?
    @Option(help: "Write the report JSON here.") var report: String?
    @Option(name: .customLong("eval-every"), help: "Also evaluate every K edits.") var evalEvery: Int?
    @Option(name: .customLong("eval-sample"), help: "Score only this many of the edited cases, drawn by a seeded shuffle (long runs).")
    var evalSample: Int?
    @Option(name: .customLong("sweep-theta"), parsing: .upToNextOption,
            help: "Evaluate the final index again at these routing thresholds θ (training keeps --theta).") var sweepTheta: [Float] = []
    @Option(help: ArgumentHelp("JSONL file whose unedited cases give the same-format locality prompts and the simulated traffic reservoir (default: --data).",
                               discussion: "Cases sharing an id or a subject with an edited case are never drawn. For zsre-dev at T≈1000 use zsre-scale.jsonl (no fact in common)."))
    var traffic: String?
    @Option(name: .customLong("same-format"), help: "Same-format locality prompts to measure (ZsRE).") var sameFormat: Int = 500
    @Option(help: "Prompts in the simulated traffic reservoir (negatives and blast radius; never measured).") var reservoir: Int = 1000
    @Option(help: "Hallucination: kept passages measured (hall_accurates.json; default all).") var kept: Int?
    @Option(help: "Hallucination: OpenWebText passages measured (default all).") var owt: Int?
    @OptionGroup var model: ModelOptions
    @Option(help: "SCENHyperparameters as JSON (a file path or inline JSON); flags below override it.") var config: String?
    @Option(help: "Edit layer L.") var layer: Int?
    @Option(name: .customLong("expert-form"), help: "lowrank | full") var expertForm: SCENHyperparameters.ExpertForm?
    @Option(help: "Expert rank r.") var rank: Int?
    @Option(name: .customLong("expert-steps")) var expertSteps: Int?
    @Option(name: .customLong("expert-lr")) var expertLR: Float?
    @Option(name: .customLong("expert-stop-loss")) var expertStopLoss: Float?
    @Option var theta: Float?
    @Option(name: .customLong("key-pooling"), help: "last-token | mean | weighted") var keyPooling: KeyPooling?
    @Option(name: .customLong("blast-radius"), help: "Largest share of traffic an edit may fire on (negative: no check).") var blastRadius: Float?
    @Option(name: .customLong("supersede-cosine"), help: "Key cosine from which an active edit is a same-fact candidate (negative: no supersede by meaning).") var supersedeCosine: Float?
    @Option(name: .customLong("same-fact-question-cosine"), help: "Centred last-token cosine from which two prompts ask the same question.") var sameFactQuestionCosine: Float?
    @Option(name: .customLong("traffic-own-cosine")) var trafficOwnCosine: Float?
    @Option(name: .customLong("latest-wins-cosine"), help: "Stored-key cosine from which a later firing edit answers instead of the best-scoring one (negative: off).")
    var latestWinsCosine: Float?
    @Option(name: .customLong("latest-wins-scope"), help: "firing | gated") var latestWinsScope: SCENHyperparameters.LatestWinsScope?
    @Option(name: .customLong("neuron-loss"), help: "scen | scen-logit | logistic-margin") var neuronLoss: SCENHyperparameters.NeuronLoss?
    @Option(name: .customLong("neuron-steps")) var neuronSteps: Int?
    @Option(name: .customLong("neuron-lr")) var neuronLR: Float?
    @Option(name: .customLong("neuron-margin")) var neuronMargin: Float?
    @Option(name: .customLong("hard-negatives")) var hardNegatives: Int?
    @Option(name: .customLong("neuron-weight-decay")) var neuronWeightDecay: Float?
    @Option(name: .customLong("prototype-init"), help: "true|false") var prototypeInit: Bool?
    @Option(name: .customLong("neuron-bias"), help: "true|false") var neuronBias: Bool?
    @Option(name: .customLong("refine"), help: "Refine earlier neurons (true|false).") var refine: Bool?
    @Option(name: .customLong("standardize"), help: "Standardise keys (true|false).") var standardize: Bool?
    @Option(name: .customLong("key-gate"), help: "Minimum key cosine (negative: off).") var keyGate: Float?
    @Option(name: .customLong("subject-gate"), help: "Route only to edits whose subject the request names (true|false).") var subjectGate: Bool?
    @Option(name: .customLong("prompt-template")) var promptTemplate: String?

    func hyperparameters() throws -> SCENHyperparameters {
        var hp = try SCENHyperparameters.load(config)
        if let layer { hp.layer = layer }
        if let expertForm { hp.expertForm = expertForm }
        if let rank { hp.rank = rank }
        if let expertSteps { hp.expertSteps = expertSteps }
        if let expertLR { hp.expertLearningRate = expertLR }
        if let expertStopLoss { hp.expertStopLoss = expertStopLoss }
        if let theta { hp.theta = theta }
        if let keyPooling { hp.keyPooling = keyPooling }
        if let blastRadius { hp.blastRadiusLimit = blastRadius < 0 ? nil : blastRadius }
        if let supersedeCosine { hp.supersedeCosine = supersedeCosine < 0 ? nil : supersedeCosine }
        if let sameFactQuestionCosine { hp.sameFactQuestionCosine = sameFactQuestionCosine }
        if let latestWinsScope { hp.latestWinsScope = latestWinsScope }
        if let latestWinsCosine { hp.latestWinsCosine = latestWinsCosine < 0 ? nil : latestWinsCosine }
        if let trafficOwnCosine { hp.trafficOwnCosine = trafficOwnCosine }
        if let neuronLoss { hp.neuronLoss = neuronLoss }
        if let neuronSteps { hp.neuronSteps = neuronSteps }
        if let neuronLR { hp.neuronLearningRate = neuronLR }
        if let neuronMargin { hp.neuronMargin = neuronMargin }
        if let hardNegatives { hp.neuronHardNegatives = hardNegatives }
        if let neuronWeightDecay { hp.neuronWeightDecay = neuronWeightDecay }
        if let prototypeInit { hp.neuronPrototypeInit = prototypeInit }
        if let neuronBias { hp.neuronBias = neuronBias }
        if let refine { hp.refineEarlierNeurons = refine }
        if let standardize { hp.standardizeKeys = standardize }
        if let keyGate { hp.keyGate = keyGate < 0 ? nil : keyGate }
        if let subjectGate { hp.subjectGate = subjectGate }
        if let promptTemplate { hp.promptTemplate = promptTemplate.replacingOccurrences(of: "\\n", with: "\n") }
        return hp
    }

    enum Benchmark: String, ExpressibleByArgument { case qa, hallucination }

    var graceHyperparameters: GRACEHyperparameters {
        var g = GRACEHyperparameters()
        if let graceEpsilon { g.epsilon = graceEpsilon }
        return g
    }

    func run() throws {
        if benchmark == .hallucination { return try runPassages() }
        let hp = try hyperparameters()
        let all = try EditBenchmark.load(path: data)
        let cases = Array(all.dropFirst(offset).prefix(limit))
        let stderr = FileHandle.standardError
        func status(_ s: String) { stderr.write(Data("\r\u{1B}[K\(s)".utf8)) }
        let candidates = try traffic.map(EditBenchmark.load(path:)) ?? all
        let drawn = SameFormatTraffic.draw(edited: cases, candidates: candidates,
                                           localityCount: cases.first?.kind == .counterfact ? 0 : sameFormat, reservoirCount: reservoir)
        let (gemma, tokenizer) = try model.load()
        let evaluation = try EditEvaluation(model: gemma, tokenizer: tokenizer, hyperparameters: hp, method: method, cases: cases,
                                            traffic: drawn)
        evaluation.progress = status
        evaluation.grace = graceHyperparameters
        var result = try evaluation.run(evalEvery: evalEvery, sweepTheta: sweepTheta, evalSample: evalSample)
        result.data = data
        try emit(result)
    }

    /// Ends the progress line, writes the report (if asked) and prints it.
    func emit<Report: Encodable>(_ result: Report) throws {
        FileHandle.standardError.write(Data("\n".utf8))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = try encoder.encode(result)
        if let report { try json.write(to: URL(fileURLWithPath: report)) }
        print(String(decoding: json, as: UTF8.self))
    }
}

extension EvalCommand {
    /// The long-form benchmark: T passage edits from --offset, the unedited passages after them
    /// as the traffic reservoir, kept and OpenWebText passages measured before and after.
    func runPassages() throws {
        let hp = try hyperparameters()
        let bench = try PassageBenchmark.load(folder: data)
        let edits = Array(bench.edits.dropFirst(offset).prefix(limit))
        let others = Array(bench.edits.dropFirst(offset + edits.count).prefix(reservoir)).map(\.prompt)
        let stderr = FileHandle.standardError
        let (gemma, tokenizer) = try model.load()
        let evaluation = try PassageEvaluation(model: gemma, tokenizer: tokenizer, hyperparameters: hp, method: method, edits: edits,
                                               kept: Array(bench.kept.prefix(kept ?? bench.kept.count)),
                                               openWebText: Array(bench.openWebText.prefix(owt ?? bench.openWebText.count)),
                                               reservoir: others)
        evaluation.progress = { stderr.write(Data("\r\u{1B}[K\($0)".utf8)) }
        evaluation.grace = graceHyperparameters
        var result = try evaluation.run()
        result.data = data
        try emit(result)
    }
}

extension EditMethod: ExpressibleByArgument {}
extension SCENHyperparameters.ExpertForm: ExpressibleByArgument {}
extension SCENHyperparameters.NeuronLoss: ExpressibleByArgument {}
extension KeyPooling: ExpressibleByArgument {}
extension SCENHyperparameters.LatestWinsScope: ExpressibleByArgument {}
