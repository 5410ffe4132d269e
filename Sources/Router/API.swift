// The HTTP API's request and response bodies (JSON, snake_case on the wire).
import Foundation
import Hummingbird

struct GenerateRequest: Decodable {
    var prompt: String
    var maxTokens: Int?

    enum CodingKeys: String, CodingKey {
        case prompt
        case maxTokens = "max_tokens"
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

    enum CodingKeys: String, CodingKey {
        case text, tokens, edit
        case promptTokens = "prompt_tokens"
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(text, forKey: .text)
        try c.encode(tokens, forKey: .tokens)
        try c.encode(promptTokens, forKey: .promptTokens)
        try c.encode(edit, forKey: .edit)  // explicit null when no edit fired
    }
}

/// OpenAI's legacy completions request; only greedy decoding is offered.
struct CompletionRequest: Decodable {
    var model: String?
    var prompt: String
    var maxTokens: Int?
    var temperature: Double?
    var n: Int?
    var stream: Bool?

    enum CodingKeys: String, CodingKey {
        case model, prompt, temperature, n, stream
        case maxTokens = "max_tokens"
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
