/**
 * What calls consumed: the `Usage` of one call (tokens, and its cost in US
 * dollars when known), and how usages add up across the steps of a tool
 * loop, the turns of a conversation and the attempts a call was billed for.
 * A leaf module: the reply data (`Reply.ts`) and the errors both carry it.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/** The optional counters, summed only where at least one side has them. */
const optionalCounters = ["cachedInputTokens", "cacheWriteInputTokens", "reasoningTokens"] as const

/**
 * Tokens consumed by one call, as the provider reported them, and what they
 * cost.
 *
 * `inputTokens` is the whole prompt: the tokens served from the cache
 * (`cachedInputTokens`) and written to it (`cacheWriteInputTokens`) are
 * part of it; `reasoningTokens` are part of `outputTokens`.
 *
 * @since 0.1.0
 */
export class Usage extends Schema.Class<Usage>("effect-llm/Usage")({
  inputTokens: Schema.Number,
  outputTokens: Schema.Number,
  totalTokens: Schema.Number,
  /** Prompt tokens served from the provider's cache. */
  cachedInputTokens: Schema.optional(Schema.Number),
  /** Prompt tokens written to the provider's cache (Anthropic). */
  cacheWriteInputTokens: Schema.optional(Schema.Number),
  /** Output tokens spent on reasoning. */
  reasoningTokens: Schema.optional(Schema.Number),
  /**
   * The cost in US dollars: the provider's own figure when it reports one
   * (OpenRouter), else the `Pricing` table's estimate; 0 on a local backend;
   * absent for a model the table does not price (never a guess).
   */
  cost: Schema.optional(Schema.Number)
}) {
  /** No tokens: what a provider that reports nothing gets (its cost is not known). */
  static readonly empty = new Usage({ inputTokens: 0, outputTokens: 0, totalTokens: 0 })

  /** No tokens and no cost: the sum of no calls. */
  static readonly zero = new Usage({ inputTokens: 0, outputTokens: 0, totalTokens: 0, cost: 0 })

  /**
   * Two usages added up, counter by counter. The cost is the sum when both
   * costs are known, and absent otherwise: a sum with an unknown part is
   * unknown, never a guess. An optional counter is present when either side
   * has it.
   */
  static add(self: Usage, that: Usage): Usage {
    const fields: {
      -readonly [K in keyof typeof Usage.fields]?: number
    } = {
      inputTokens: self.inputTokens + that.inputTokens,
      outputTokens: self.outputTokens + that.outputTokens,
      totalTokens: self.totalTokens + that.totalTokens
    }
    for (const key of optionalCounters) {
      if (self[key] !== undefined || that[key] !== undefined) fields[key] = (self[key] ?? 0) + (that[key] ?? 0)
    }
    if (self.cost !== undefined && that.cost !== undefined) fields.cost = self.cost + that.cost
    return new Usage(fields as typeof Usage.Type, true)
  }

  /** Usages added up (see `add`); `Usage.zero` for none. */
  static sum(usages: Iterable<Usage>): Usage {
    let total: Usage | undefined
    for (const usage of usages) total = total === undefined ? usage : Usage.add(total, usage)
    return total ?? Usage.zero
  }

  /**
   * What a reply was billed for in all: its own `usage` plus the usage of
   * the attempts that failed before it and reported some
   * (`metadata.failedUsage`: retried attempts, backends a fallback chain
   * moved past). Takes a `CompletionResult` or a `Finish` event.
   */
  static billed(
    reply: { readonly usage: Usage; readonly metadata: { readonly failedUsage?: Usage | undefined } }
  ): Usage {
    const failed = reply.metadata.failedUsage
    return failed === undefined ? reply.usage : Usage.add(failed, reply.usage)
  }
}
