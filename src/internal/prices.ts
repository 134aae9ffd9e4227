/**
 * The price table bundled with the package: US dollars per million tokens, by provider and model, with the date and the pages the prices were taken from.
 */
import type { PriceTable } from "../Pricing.js"

/** The bundled prices (see `Pricing.bundled`). */
export const bundled: PriceTable = {
  takenOn: "2026-12-02",
  sources: [
    "https://developers.openai.com/api/docs/pricing",
    "https://platform.claude.com/docs/en/about-claude/pricing",
    "https://platform.claude.com/docs/en/models/overview",
    "https://openrouter.ai/api/v1/models"
  ],
  prices: {
    openai: {
      "gpt-5.5": { input: 5, cacheRead: 0.5, output: 30 },
      "gpt-5": { input: 1.25, cacheRead: 0.125, output: 10 },
      "gpt-5-mini": { input: 0.25, cacheRead: 0.025, output: 2 },
      "gpt-4.1": { input: 2, cacheRead: 0.5, output: 8 },
      "gpt-4.1-mini": { input: 0.4, cacheRead: 0.1, output: 1.6 },
      "gpt-4o": { input: 2.5, cacheRead: 1.25, output: 10 },
      "gpt-4o-2024-08-06": { input: 2.5, cacheRead: 1.25, output: 10 },
      "gpt-4o-mini": { input: 0.15, cacheRead: 0.075, output: 0.6 }
    },
    anthropic: {
      "claude-fable-5-1": { input: 10, cacheWrite: 12.5, cacheRead: 0.25, output: 50 },
      "claude-opus-5": { input: 5, cacheWrite: 6.25, cacheRead: 0.5, output: 25 },
      "claude-sonnet-5": { input: 2, cacheWrite: 2.5, cacheRead: 0.2, output: 10 },
      "claude-haiku-4-5": { input: 1, cacheWrite: 1.25, cacheRead: 0.1, output: 5 },
      "claude-haiku-4-5-20251001": { input: 1, cacheWrite: 1.25, cacheRead: 0.1, output: 5 },
      "claude-opus-4-5": { input: 5, cacheWrite: 6.25, cacheRead: 0.5, output: 25 },
      "claude-opus-4-5-20251101": { input: 5, cacheWrite: 6.25, cacheRead: 0.5, output: 25 },
      "claude-sonnet-4-5": { input: 3, cacheWrite: 3.75, cacheRead: 0.3, output: 15 },
      "claude-sonnet-4-5-20250929": { input: 3, cacheWrite: 3.75, cacheRead: 0.3, output: 15 },
      "claude-sonnet-4-0": { input: 3, cacheWrite: 3.75, cacheRead: 0.3, output: 15 },
      "claude-sonnet-4-20250514": { input: 3, cacheWrite: 3.75, cacheRead: 0.3, output: 15 }
    },
    openrouter: {
      "openai/gpt-4o": { input: 2.5, cacheRead: 1.25, output: 10 },
      "anthropic/claude-sonnet-4": { input: 3, cacheWrite: 3.75, cacheRead: 0.3, output: 15 }
    },
    // a model served on your own hardware bills no tokens
    local: { "*": { input: 0, output: 0 } }
  }
}
