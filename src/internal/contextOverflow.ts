/**
 * Recognising a context-length error, whichever server sent it, and the
 * sizes it gives: the prompt's and the context's, in the server's tokens.
 * Where each wording comes from is in test/fixtures/SOURCES.md ("Context
 * overflow"); test/contextOverflow.test.ts has one case per wording.
 *
 * @internal
 */

/** What a failure says, as `fromProviderFailure` reads it. */
export interface Said {
  readonly type?: string | undefined
  readonly code?: string | undefined
  readonly message?: string | undefined
  /** A size the body gave as a field (llama-server's `n_prompt_tokens`). */
  readonly promptTokens?: number | undefined
  /** A size the body gave as a field (llama-server's `n_ctx`). */
  readonly contextTokens?: number | undefined
}

/** The sizes of an overflow, when the server gave them. */
export interface Overflow {
  readonly promptTokens?: number | undefined
  readonly contextTokens?: number | undefined
  /** The room for output the request asked for (its max tokens). */
  readonly requestedOutputTokens?: number | undefined
}

/** Error types and codes that mean an overflow (llama-server, OpenAI; llama-server's own for its own error's code). */
const overflowKinds = new Set(["exceed_context_size_error", "context_length_exceeded"])

/**
 * Wordings that mean an overflow: OpenAI, vLLM, OpenRouter and their
 * upstreams ("maximum context length"), llama-server ("exceeds the
 * available context size", "larger than the max context size"), Anthropic
 * ("prompt is too long", "exceed context limit"), OpenAI's context-window
 * wording, Ollama ("the input length exceeds the context length"), LM
 * Studio ("when context the overflows", "Reached context length of", and its
 * MLX engine's "Context size has been exceeded").
 */
const overflowText =
  /maximum context length|exceeds? the available context size|larger than the max context size|prompt is too long|exceed context limit|exceeds? the context window|input length exceeds the context length|context the overflows|reached context length of|context size has been exceeded|context length exceeded/i

/** Where a message gives the context's size (the capture). */
const contextPatterns: ReadonlyArray<RegExp> = [
  /maximum context length (?:is|of) (\d+)/i,
  /available context size \((\d+) tokens?\)/i,
  /max context size \((\d+) tokens?\)/i,
  /\d+ tokens? > (\d+) maximum/i,
  /exceed context limit: \d+ \+ \d+ > (\d+)/i,
  /context length of only (\d+)/i,
  /reached context length of (\d+)/i
]

/** Where a message gives the prompt's size (the capture). */
const promptPatterns: ReadonlyArray<RegExp> = [
  /^request \((\d+) tokens?\)/i,
  /^input \((\d+) tokens?\)/i,
  /messages resulted in (\d+) tokens/i,
  /\((\d+) in (?:the|your) (?:messages|prompt)/i,
  /(\d+) of text input/i,
  /request has (\d+) input tokens/i,
  /prompt contains at least (\d+) input tokens/i,
  /you requested (\d+) tokens in the messages/i,
  /prompt is too long: (\d+) tokens?/i,
  /exceed context limit: (\d+) \+/i,
  /keep the first (\d+) tokens/i
]

/** Where a message gives the output the request asked room for (the capture). */
const outputPatterns: ReadonlyArray<RegExp> = [
  /(\d+) (?:in|for) the completion/i,
  /you requested (\d+) output tokens/i,
  /(\d+) in the output/i,
  /exceed context limit: \d+ \+ (\d+) >/i
]

const firstNumber = (text: string, patterns: ReadonlyArray<RegExp>): number | undefined => {
  for (const pattern of patterns) {
    const match = pattern.exec(text)
    if (match !== null) return Number(match[1])
  }
  return undefined
}

/**
 * The overflow a failure stands for, with the sizes it gives (the body's
 * fields first, then its message), or undefined when it is no overflow.
 *
 * @internal
 */
export const overflowOf = (said: Said): Overflow | undefined => {
  const message = said.message ?? ""
  const known = (said.type !== undefined && overflowKinds.has(said.type)) ||
    (said.code !== undefined && overflowKinds.has(said.code)) ||
    overflowText.test(message)
  if (!known) return undefined
  // vLLM: "(8000 > 4096 - 2778)" is the output asked for, the context, the prompt
  const vllm = /\((\d+) > (\d+) - (\d+)\)/.exec(message)
  return {
    promptTokens: said.promptTokens ?? (vllm === null ? firstNumber(message, promptPatterns) : Number(vllm[3])),
    contextTokens: said.contextTokens ?? (vllm === null ? firstNumber(message, contextPatterns) : Number(vllm[2])),
    requestedOutputTokens: vllm === null ? firstNumber(message, outputPatterns) : Number(vllm[1])
  }
}
