/**
 * effect-llm: one typed Effect interface to large language models.
 *
 * @since 0.1.0
 */

/**
 * The `Llm` service, its options and the `CompletionResult` model.
 *
 * @since 0.1.0
 */
export * as Llm from "./Llm.js"

/**
 * Messages, tool definitions and tool calls.
 *
 * @since 0.1.0
 */
export * as Message from "./Message.js"

/**
 * The typed errors, `isLlmError`, `isTransient` and `isContextOverflow`.
 *
 * @since 0.1.0
 */
export * as Errors from "./errors.js"

/**
 * Stream events and the functions over event streams.
 *
 * @since 0.1.0
 */
export * as LlmStream from "./Stream.js"

/**
 * Conversation history as an immutable value, with safe pruning.
 *
 * @since 0.1.0
 */
export * as ConversationContext from "./Context.js"

/**
 * A conversation as a service over the `Llm`.
 *
 * @since 0.1.0
 */
export * as Conversation from "./Conversation.js"

/**
 * Token counting for context budgets.
 *
 * @since 0.1.0
 */
export * as TokenCounter from "./TokenCounter.js"

/**
 * Schema-typed tools.
 *
 * @since 0.1.0
 */
export * as Tool from "./Tool.js"

/**
 * Toolkits and the tool-execution loop.
 *
 * @since 0.1.0
 */
export * as Toolkit from "./Toolkit.js"

/**
 * Structured output: the options, result and stream events of `Llm.generateObject` / `Llm.streamObject`.
 *
 * @since 0.1.0
 */
export * as StructuredOutput from "./StructuredOutput.js"

/**
 * Tools from MCP servers (stdio or Streamable HTTP) as a toolkit.
 *
 * @since 0.1.0
 */
export * as McpToolkit from "./McpToolkit.js"

/**
 * The `Llm` layer picked from a configuration (object, YAML/JSON file, environment).
 *
 * @since 0.1.0
 */
export * as LlmConfig from "./Config.js"

/**
 * The retry options a layer takes, and the policy used when none are set.
 *
 * @since 0.1.0
 */
export * as Retry from "./Retry.js"

/**
 * The OpenAI backend.
 *
 * @since 0.1.0
 */
export * as OpenAi from "./layers/OpenAi.js"

/**
 * The OpenRouter backend.
 *
 * @since 0.1.0
 */
export * as OpenRouter from "./layers/OpenRouter.js"

/**
 * The Anthropic backend.
 *
 * @since 0.1.0
 */
export * as Anthropic from "./layers/Anthropic.js"

/**
 * Local OpenAI-compatible servers (llama.cpp, Ollama, vLLM, mlx_lm, LM Studio).
 *
 * @since 0.1.0
 */
export * as Local from "./layers/Local.js"

/**
 * The OpenAI Chat Completions wire codec.
 *
 * @since 0.1.0
 */
export * as ChatCompletions from "./codecs/ChatCompletions.js"

/**
 * The Anthropic Messages wire codec.
 *
 * @since 0.1.0
 */
export * as AnthropicMessages from "./codecs/AnthropicMessages.js"

/**
 * Local-to-cloud fallback with circuit breakers.
 *
 * @since 0.1.0
 */
export * as Fallback from "./layers/Fallback.js"

/**
 * How the HTTP backends reach the network: undici directly (the default) or an `HttpClient`.
 *
 * @since 0.1.0
 */
export * as HttpTransport from "./HttpTransport.js"

/**
 * What models cost: the bundled price table, the layers that override or extend it, the cost of a usage.
 *
 * @since 0.1.0
 */
export * as Pricing from "./Pricing.js"

/**
 * Where breakers, rate limits and conversations live: this process (the default) or a Redis server shared by many.
 *
 * @since 0.1.0
 */
export * as SharedState from "./SharedState.js"

/**
 * Telemetry: the GenAI-convention spans and metrics, content capture and the conversation id.
 *
 * @since 0.1.0
 */
export * as Telemetry from "./Telemetry.js"

/**
 * The provider kit: declare an HTTP provider once (name, codec, defaults, key header, env names)
 * and get its `make`, `layer` and `layerConfig`.
 *
 * @since 0.1.0
 */
export * as Provider from "./Provider.js"

/**
 * The kit for writing a wire codec: the shapes a codec implements and the error builders it uses.
 *
 * @since 0.1.0
 */
export * as WireCodec from "./codecs/WireCodec.js"

export {
  /** @since 0.1.0 */
  isContextOverflow,
  /** @since 0.1.0 */
  isLlmError,
  /** @since 0.1.0 */
  isTransient,
  /** @since 0.1.0 */
  LlmAuthenticationError,
  /** @since 0.1.0 */
  LlmConnectionError,
  /** @since 0.1.0 */
  LlmError,
  /** @since 0.1.0 */
  LlmInvalidRequestError,
  /** @since 0.1.0 */
  LlmOutputError,
  /** @since 0.1.0 */
  LlmProviderError,
  /** @since 0.1.0 */
  LlmRateLimitError,
  /** @since 0.1.0 */
  LlmResponseError,
  /** @since 0.1.0 */
  LlmTimeoutError
} from "./errors.js"
export {
  /** @since 0.1.0 */
  type CompletionOptions,
  /** @since 0.1.0 */
  CompletionResult,
  /** @since 0.1.0 */
  type FinishReason,
  /** @since 0.1.0 */
  type PromptCacheOption,
  /** @since 0.1.0 */
  type ReasoningOption,
  /** @since 0.1.0 */
  type ResponseFormat,
  /** @since 0.1.0 */
  type ToolChoice,
  /** @since 0.1.0 */
  Usage
} from "./Llm.js"
export {
  /** @since 0.1.0 */
  AssistantMessage,
  /** @since 0.1.0 */
  ReasoningPart,
  /** @since 0.1.0 */
  SystemMessage,
  /** @since 0.1.0 */
  ToolCall,
  /** @since 0.1.0 */
  ToolDefinition,
  /** @since 0.1.0 */
  ToolMessage,
  /** @since 0.1.0 */
  UserMessage
} from "./Message.js"
export {
  /** @since 0.1.0 */
  StreamEvent
} from "./Stream.js"
