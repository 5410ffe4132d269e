// The HTTP API's request and response bodies (JSON, snake_case on the wire).
import Core
import Foundation
import Hummingbird

/// The generation options both endpoints take (OpenAI's names). Greedy unless a temperature
/// above 0 is given.
struct SamplingFields: Decodable {
    var temperature: Float?
    var topP: Float?
    var topK: Int?
    var seed: UInt64?
    /// One string or a list of up to 4.
    var stop: [String]?
    var stream: Bool?

    enum CodingKeys: String, CodingKey {
        case temperature, seed, stop, stream
        case topP = "top_p"
        case topK = "top_k"
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        temperature = try c.decodeIfPresent(Float.self, forKey: .temperature)
        topP = try c.decodeIfPresent(Float.self, forKey: .topP)
        topK = try c.decodeIfPresent(Int.self, forKey: .topK)
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed)
        stream = try c.decodeIfPresent(Bool.self, forKey: .stream)
        if let one = try? c.decodeIfPresent(String.self, forKey: .stop) { stop = [one] } else {
            stop = try c.decodeIfPresent([String].self, forKey: .stop)
        }
    }

    /// The options, or a 400 saying what is wrong.
    func options(maxTokens: Int) throws -> GenerationOptions {
        let sampling = SamplingParameters(temperature: temperature ?? 0, topK: topK ?? 0, topP: topP ?? 1, seed: seed)
        if let problem = sampling.problem { throw HTTPError(.badRequest, message: problem) }
        let stop = stop ?? []
        guard stop.count <= 4, stop.allSatisfy({ !$0.isEmpty && $0.count <= 64 }) else {
            throw HTTPError(.badRequest, message: "stop takes up to 4 non-empty strings of at most 64 characters")
        }
        return GenerationOptions(maxTokens: maxTokens, sampling: sampling, stop: stop)
    }
}

struct GenerateRequest: Decodable {
    var prompt: String
    var maxTokens: Int?
    var sampling: SamplingFields

    enum CodingKeys: String, CodingKey {
        case prompt
        case maxTokens = "max_tokens"
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        prompt = try c.decode(String.self, forKey: .prompt)
        maxTokens = try c.decodeIfPresent(Int.self, forKey: .maxTokens)
        sampling = try SamplingFields(from: decoder)
    }
}

struct FiredEdit: Encodable {
    var id: Int64
    var score: Float
}

struct GenerateResponse: ResponseEncodable {
    var text: String
    var tokens: Int
    var promptTokens: Int
    var edit: FiredEdit?
    var finishReason: String

    enum CodingKeys: String, CodingKey {
        case text, tokens, edit
        case promptTokens = "prompt_tokens"
        case finishReason = "finish_reason"
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(text, forKey: .text)
        try c.encode(tokens, forKey: .tokens)
        try c.encode(promptTokens, forKey: .promptTokens)
        try c.encode(edit, forKey: .edit)  // explicit null when no edit fired
        try c.encode(finishReason, forKey: .finishReason)
    }
}

/// OpenAI's legacy completions request.
struct CompletionRequest: Decodable {
    var model: String?
    var prompt: String
    var maxTokens: Int?
    var n: Int?
    var logprobs: Int?
    var sampling: SamplingFields

    enum CodingKeys: String, CodingKey {
        case model, prompt, n, logprobs
        case maxTokens = "max_tokens"
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        model = try c.decodeIfPresent(String.self, forKey: .model)
        prompt = try c.decode(String.self, forKey: .prompt)
        maxTokens = try c.decodeIfPresent(Int.self, forKey: .maxTokens)
        n = try c.decodeIfPresent(Int.self, forKey: .n)
        logprobs = try c.decodeIfPresent(Int.self, forKey: .logprobs)
        sampling = try SamplingFields(from: decoder)
    }
}

/// One Server-Sent Events chunk of a streamed completion (OpenAI's shape): `text` is the new
/// text; the first chunk names the edit that answered, the last one the finish reason.
struct CompletionChunk: Encodable {
    var id: String
    var object = "text_completion"
    var created: Int
    var model: String
    var text: String
    var finishReason: String?
    var scenEdit: FiredEdit?

    enum CodingKeys: String, CodingKey {
        case id, object, created, model, choices
        case scenEdit = "scen_edit"
    }
    enum ChoiceKeys: String, CodingKey {
        case text, index, logprobs
        case finishReason = "finish_reason"
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(object, forKey: .object)
        try c.encode(created, forKey: .created)
        try c.encode(model, forKey: .model)
        var choices = c.nestedUnkeyedContainer(forKey: .choices)
        var choice = choices.nestedContainer(keyedBy: ChoiceKeys.self)
        try choice.encode(text, forKey: .text)
        try choice.encode(0, forKey: .index)
        try choice.encodeNil(forKey: .logprobs)
        if let finishReason { try choice.encode(finishReason, forKey: .finishReason) } else { try choice.encodeNil(forKey: .finishReason) }
        if let scenEdit { try c.encode(scenEdit, forKey: .scenEdit) }
    }
}

/// One chunk of a streamed /v1/generate: the new text; the first names the edit (or null), the
/// last adds the token counts and the finish reason.
struct GenerateChunk: Encodable {
    var text: String
    var edit: FiredEdit??
    var tokens: Int?
    var promptTokens: Int?
    var finishReason: String?

    enum CodingKeys: String, CodingKey {
        case text, edit, tokens
        case promptTokens = "prompt_tokens"
        case finishReason = "finish_reason"
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(text, forKey: .text)
        if let edit { try c.encode(edit, forKey: .edit) }  // explicit null when no edit fired
        try c.encodeIfPresent(tokens, forKey: .tokens)
        try c.encodeIfPresent(promptTokens, forKey: .promptTokens)
        try c.encodeIfPresent(finishReason, forKey: .finishReason)
    }
}

struct CompletionResponse: ResponseEncodable {
    struct Choice: Encodable {
        var text: String
        var index: Int
        var logprobs: String?
        var finishReason: String

        enum CodingKeys: String, CodingKey {
            case text, index, logprobs
            case finishReason = "finish_reason"
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(text, forKey: .text)
            try c.encode(index, forKey: .index)
            try c.encodeNil(forKey: .logprobs)
            try c.encode(finishReason, forKey: .finishReason)
        }
    }

    struct Usage: Encodable {
        var promptTokens: Int
        var completionTokens: Int
        var totalTokens: Int

        enum CodingKeys: String, CodingKey {
            case promptTokens = "prompt_tokens"
            case completionTokens = "completion_tokens"
            case totalTokens = "total_tokens"
        }
    }

    var id: String
    var object = "text_completion"
    var created: Int
    var model: String
    var choices: [Choice]
    var usage: Usage
    /// Which edit fired, if any (an extension to OpenAI's shape; clients ignore it).
    var scenEdit: FiredEdit?

    enum CodingKeys: String, CodingKey {
        case id, object, created, model, choices, usage
        case scenEdit = "scen_edit"
    }
}

struct StatusResponse: ResponseEncodable {
    var status: String
    var detail: String?
}
