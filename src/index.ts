/**
 * effect-llm: one typed Effect interface to large language models.
 *
 * @since 0.1.0
 */

/** The `Llm` service, its options and the `CompletionResult` model. */
export * as Llm from "./Llm.js"

/** Messages, tool definitions and tool calls. */
export * as Message from "./Message.js"

/** The typed errors and `isTransient`. */
export * as Errors from "./errors.js"

/** Stream events and the functions over event streams. */
export * as LlmStream from "./Stream.js"

/** Conversation history as an immutable value, with safe pruning. */
export * as ConversationContext from "./Context.js"

/** A conversation as a service over the `Llm`. */
export * as Conversation from "./Conversation.js"

/** Token counting for context budgets. */
export * as TokenCounter from "./TokenCounter.js"

/** Schema-typed tools. */
export * as Tool from "./Tool.js"

/** Toolkits and the tool-execution loop. */
export * as Toolkit from "./Toolkit.js"

/** The `Llm` layer picked from configuration (object, YAML/JSON file, environment). */
export * as LlmConfig from "./Config.js"

/** The retry policy. */
export * as Retry from "./Retry.js"

/** The OpenAI backend. */
export * as OpenAi from "./layers/OpenAi.js"

/** The OpenRouter backend. */
export * as OpenRouter from "./layers/OpenRouter.js"

/** The Anthropic backend. */
export * as Anthropic from "./layers/Anthropic.js"

/** Local OpenAI-compatible servers (llama.cpp, Ollama, vLLM, mlx_lm, LM Studio). */
export * as Local from "./layers/Local.js"

/** The OpenAI Chat Completions wire codec. */
export * as ChatCompletions from "./layers/ChatCompletions.js"

/** The Anthropic Messages wire codec. */
export * as Messages from "./layers/Messages.js"

/** Local-to-cloud fallback with circuit breakers. */
export * as Fallback from "./layers/Fallback.js"

/** How the HTTP backends reach the network: undici directly (the default) or an `HttpClient`. */
export * as HttpTransport from "./HttpTransport.js"

/** The provider kit: declare an HTTP provider once, get its `make`, `layer` and `layerConfig`. */
export * as Provider from "./Provider.js"

/** The shared HTTP machinery for building a backend from a wire codec. */
export * as HttpProvider from "./layers/HttpProvider.js"

/** The shape of a wire codec. */
export type * as WireCodec from "./layers/WireCodec.js"

export {
  isLlmError,
  isTransient,
  LlmAuthenticationError,
  LlmConnectionError,
  LlmError,
  LlmInvalidRequestError,
  LlmProviderError,
  LlmRateLimitError,
  LlmResponseError,
  LlmTimeoutError
} from "./errors.js"
export { CompletionResult, type CompletionOptions, type FinishReason, type ToolChoice, Usage } from "./Llm.js"
export { AssistantMessage, SystemMessage, ToolCall, ToolDefinition, ToolMessage, UserMessage } from "./Message.js"
export { StreamEvent } from "./Stream.js"
