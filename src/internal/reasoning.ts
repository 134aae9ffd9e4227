/**
 * The one table between the two ways backends take a `reasoning` option: an
 * effort (OpenAI, local servers) or a budget of tokens (Anthropic,
 * OpenRouter's `max_tokens`). Each codec maps the option through it.
 *
 * @internal
 */
import type { ReasoningOption } from "../Llm.js"
import { ReasoningPart } from "../Message.js"

/**
 * Reasoning text no part of its backend closed (Chat Completions'
 * reasoning), as the one part it makes, named by `provider` when known: the
 * same rule for a whole reply and a collected stream.
 */
export const textPart = (text: string, provider: string | undefined): ReasoningPart =>
  new ReasoningPart(provider === undefined ? { text } : { text, provider }, true)

/** A reasoning effort. */
export type Effort = "low" | "medium" | "high"

/** A reasoning option that turns reasoning on. */
export type Enabled = Exclude<ReasoningOption, { readonly enabled: false }>

/**
 * The thinking budget each effort stands for: Anthropic's minimum for `low`,
 * four and sixteen times it for `medium` and `high` (short enough for a
 * spoken reply to start soon).
 */
export const effortBudgets: { readonly [E in Effort]: number } = { low: 1024, medium: 4096, high: 16384 }

/** The budget of an option: its own, or its effort's. */
export const budgetOf = (option: Enabled): number =>
  "effort" in option ? effortBudgets[option.effort] : option.budgetTokens

/**
 * The effort of an option: its own, or the one whose budget is nearest its
 * budget (up to 2048 tokens `low`, up to 8192 `medium`, above `high`).
 */
export const effortOf = (option: Enabled): Effort => {
  if ("effort" in option) return option.effort
  const budget = option.budgetTokens
  return budget <= 2 * effortBudgets.low ? "low" : budget <= 2 * effortBudgets.medium ? "medium" : "high"
}
