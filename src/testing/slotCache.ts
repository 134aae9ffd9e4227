/**
 * llama-server's slot cache, as the fake provider simulates it: each slot
 * remembers the prompt it last evaluated, and a request reuses the prefix
 * it shares with that prompt (`cache_prompt`, on by default), then reports
 * it as llama-server does, in `usage.prompt_tokens_details.cached_tokens`
 * and `timings.cache_n`.
 *
 * A token here is one character (UTF-16 code unit) of the prompt the
 * request renders to (see {@link slotPrompt}), a stand-in for the model's
 * tokenizer and chat template: what matters is that a longer shared prefix
 * reports more cached tokens, exactly.
 *
 * @since 0.1.0
 */

/**
 * What a request's prompt renders to in the slot simulation: the tools, then
 * each message as `<|role|>content<|end|>` (with its tool calls), then the
 * assistant's turn header, as a chat template renders a prefix that grows
 * turn by turn.
 *
 * @since 0.1.0
 */
export const slotPrompt = (body: unknown): string => {
  const request = (typeof body === "object" && body !== null ? body : {}) as {
    readonly tools?: unknown
    readonly messages?: unknown
  }
  const parts: Array<string> = []
  if (Array.isArray(request.tools) && request.tools.length > 0) {
    parts.push(`<|tools|>${JSON.stringify(request.tools)}<|end|>`)
  }
  for (const message of Array.isArray(request.messages) ? request.messages : []) {
    const { content, role, tool_calls } = (typeof message === "object" && message !== null ? message : {}) as {
      readonly role?: unknown
      readonly content?: unknown
      readonly tool_calls?: unknown
    }
    const text = typeof content === "string"
      ? content
      : content === undefined || content === null
      ? ""
      : JSON.stringify(content)
    const calls = tool_calls === undefined ? "" : JSON.stringify(tool_calls)
    parts.push(`<|${String(role)}|>${text}${calls}<|end|>`)
  }
  parts.push("<|assistant|>")
  return parts.join("")
}

/**
 * What a slot reports for one request: llama-server's `timings` and the
 * prompt counts its `usage` carries.
 *
 * @since 0.1.0
 */
export interface SlotReport {
  /** The slot that evaluated the prompt. */
  readonly slot: number
  /** `usage.prompt_tokens`: the whole prompt. */
  readonly promptTokens: number
  /** `usage.prompt_tokens_details.cached_tokens` and `timings.cache_n`: the prefix reused. */
  readonly cachedTokens: number
  /** llama-server's `timings` for the reply, given the tokens generated. */
  readonly timings: (generated: number) => Readonly<Record<string, number>>
}

/** The simulated speeds: 1000 prompt tokens a second, 50 generated tokens a second. */
const promptMillisPerToken = 1
const generatedMillisPerToken = 20

const timingsOf = (cached: number, evaluated: number, generated: number): Readonly<Record<string, number>> => ({
  cache_n: cached,
  prompt_n: evaluated,
  prompt_ms: evaluated * promptMillisPerToken,
  prompt_per_token_ms: promptMillisPerToken,
  prompt_per_second: 1000 / promptMillisPerToken,
  predicted_n: generated,
  predicted_ms: generated * generatedMillisPerToken,
  predicted_per_token_ms: generatedMillisPerToken,
  predicted_per_second: 1000 / generatedMillisPerToken
})

/**
 * The slots of one simulated server: `slots` is llama-server's `--parallel`.
 * A request with `id_slot` uses that slot; one without (or with -1) takes
 * the least recently used slot (llama-server first looks for a slot whose
 * prompt is similar enough, `--slot-prompt-similarity`: the fake always
 * takes the fallback, as a busy server does).
 *
 * @since 0.1.0
 */
export class SlotCache {
  private readonly prompts = new Map<number, string>()
  private readonly lastUsed = new Map<number, number>()
  private clock = 0

  constructor(private readonly slots: number) {}

  /**
   * Evaluates a chat request's prompt into its slot and reports what it
   * reused. As llama-server does, a prompt entirely in the cache still has
   * its last token evaluated (the logits come from it), and
   * `cache_prompt: false` reuses nothing.
   */
  evaluate(body: unknown): SlotReport {
    const request = (typeof body === "object" && body !== null ? body : {}) as {
      readonly id_slot?: unknown
      readonly cache_prompt?: unknown
    }
    const slot = typeof request.id_slot === "number" && request.id_slot >= 0
      ? request.id_slot
      : this.leastRecentlyUsed()
    const prompt = slotPrompt(body)
    const previous = this.prompts.get(slot) ?? ""
    let shared = 0
    while (shared < previous.length && shared < prompt.length && previous[shared] === prompt[shared]) shared++
    const cached = request.cache_prompt === false ? 0 : Math.max(0, Math.min(shared, prompt.length - 1))
    this.prompts.set(slot, prompt)
    this.lastUsed.set(slot, ++this.clock)
    return {
      slot,
      promptTokens: prompt.length,
      cachedTokens: cached,
      timings: (generated) => timingsOf(cached, prompt.length - cached, generated)
    }
  }

  /** Forgets every slot's prompt. */
  clear(): void {
    this.prompts.clear()
    this.lastUsed.clear()
    this.clock = 0
  }

  private leastRecentlyUsed(): number {
    let best = 0
    for (let slot = 0; slot < this.slots; slot++) {
      if ((this.lastUsed.get(slot) ?? 0) < (this.lastUsed.get(best) ?? 0)) best = slot
    }
    return best
  }
}
