// Every GGUF metadata key name the project reads or writes, in one place.
// Names follow gguf-py `gguf/constants.py` (class Keys) and llama.cpp's llama-arch.cpp.

/// GGUF metadata key names.
public enum GGUFKeys {
    /// `general.*` keys.
    public enum General {
        public static let architecture = "general.architecture"
        public static let alignment = "general.alignment"
        public static let name = "general.name"
        public static let type = "general.type"
        public static let basename = "general.basename"
        public static let sizeLabel = "general.size_label"
        public static let license = "general.license"
        public static let fileType = "general.file_type"
        public static let quantizationVersion = "general.quantization_version"
    }

    /// Hyper-parameters of the `gemma3` architecture.
    public enum Gemma3 {
        public static let architecture = "gemma3"
        public static let contextLength = "gemma3.context_length"
        public static let embeddingLength = "gemma3.embedding_length"
        public static let blockCount = "gemma3.block_count"
        public static let feedForwardLength = "gemma3.feed_forward_length"
        public static let headCount = "gemma3.attention.head_count"
        public static let headCountKV = "gemma3.attention.head_count_kv"
        public static let keyLength = "gemma3.attention.key_length"
        public static let valueLength = "gemma3.attention.value_length"
        public static let rmsNormEpsilon = "gemma3.attention.layer_norm_rms_epsilon"
        public static let slidingWindow = "gemma3.attention.sliding_window"
        public static let ropeFreqBase = "gemma3.rope.freq_base"
        public static let ropeScalingType = "gemma3.rope.scaling.type"
        public static let ropeScalingFactor = "gemma3.rope.scaling.factor"
        public static let finalLogitSoftcapping = "gemma3.final_logit_softcapping"
        public static let attentionLogitSoftcapping = "gemma3.attn_logit_softcapping"
    }

    /// `tokenizer.*` keys.
    public enum Tokenizer {
        public static let model = "tokenizer.ggml.model"
        public static let pre = "tokenizer.ggml.pre"
        public static let tokens = "tokenizer.ggml.tokens"
        public static let scores = "tokenizer.ggml.scores"
        public static let tokenType = "tokenizer.ggml.token_type"
        public static let merges = "tokenizer.ggml.merges"
        public static let bosTokenID = "tokenizer.ggml.bos_token_id"
        public static let eosTokenID = "tokenizer.ggml.eos_token_id"
        public static let eotTokenID = "tokenizer.ggml.eot_token_id"
        public static let unknownTokenID = "tokenizer.ggml.unknown_token_id"
        public static let separatorTokenID = "tokenizer.ggml.seperator_token_id"
        public static let paddingTokenID = "tokenizer.ggml.padding_token_id"
        public static let maskTokenID = "tokenizer.ggml.mask_token_id"
        public static let addBOSToken = "tokenizer.ggml.add_bos_token"
        public static let addEOSToken = "tokenizer.ggml.add_eos_token"
        public static let addSEPToken = "tokenizer.ggml.add_sep_token"
        public static let addSpacePrefix = "tokenizer.ggml.add_space_prefix"
        public static let chatTemplate = "tokenizer.chat_template"
    }
}
