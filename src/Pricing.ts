/**
 * What models cost: a table of prices per million tokens (input, output,
 * cache reads, cache writes) by provider and model, and the cost in US
 * dollars of a call's `Usage` from it. The package bundles a table
 * (`bundled`: the models of the README and the providers' flagship models,
 * with the date the prices were taken and where from); `layer` overrides or
 * extends it, as does a configuration file's `pricing:` section.
 *
 * Every HTTP backend prices each reply with the table it found when it was
 * built (like `HttpTransport`, the `Pricing` in context is read once, when
 * the backend's layer is built): a cost the provider reports itself
 * (OpenRouter's `usage.cost`) wins, a local backend costs 0 (its `"*"`
 * entry), and a model the table does not price has no cost.
 *
 * @example
 * import { Layer } from "effect"
 * import { OpenAi, Pricing } from "effect-llm"
 *
 * // a model of your own, and a negotiated price for another
 * const Priced = OpenAi.layerConfig({ model: "ft:gpt-4o:acme" }).pipe(
 *   Layer.provide(Pricing.layer({ openai: { "ft:gpt-4o:acme": { input: 3.75, cacheRead: 1.875, output: 15 } } }))
 * )
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { bundled as bundledTable } from "./internal/prices.js"
import type { Usage } from "./Usage.js"

/**
 * A model's prices, in US dollars per million tokens.
 *
 * @since 0.1.0
 */
export interface ModelPrice {
  /** Prompt tokens neither read from nor written to the cache. */
  readonly input: number
  /** Output tokens, reasoning included. */
  readonly output: number
  /** Prompt tokens read from the cache (default: `input`). */
  readonly cacheRead?: number | undefined
  /** Prompt tokens written to the cache (default: `input`; Anthropic's price is that of a 5-minute write). */
  readonly cacheWrite?: number | undefined
}

/**
 * Prices by provider (the name results report in `metadata.provider`:
 * `openai`, `anthropic`, `openrouter`, `local`, a custom provider's), then
 * by model; a provider's `"*"` entry prices every model it does not list.
 *
 * @since 0.1.0
 */
export type Prices = Readonly<Record<string, Readonly<Record<string, ModelPrice>>>>

/**
 * A price table: the prices, the date they were taken and where from.
 *
 * @since 0.1.0
 */
export interface PriceTable {
  /** The date the prices were taken (`YYYY-MM-DD`). */
  readonly takenOn: string
  /** The pages they were taken from. */
  readonly sources: ReadonlyArray<string>
  readonly prices: Prices
}

/**
 * The price table bundled with the package.
 *
 * @since 0.1.0
 */
export const bundled: PriceTable = bundledTable

/**
 * The prices the HTTP backends use: the bundled table unless a layer of this
 * module provides another. Read when a backend's layer is built.
 *
 * @since 0.1.0
 */
export class Pricing extends Context.Reference<Pricing>()("effect-llm/Pricing", {
  defaultValue: (): Pricing.Service => defaultPricing
}) {}

/**
 * The types of the `Pricing` service.
 *
 * @since 0.1.0
 */
export declare namespace Pricing {
  /**
   * A price table and its lookup.
   *
   * @since 0.1.0
   */
  export interface Service {
    readonly table: PriceTable
    /** The price of `model` of `provider`: its own entry, else the provider's `"*"`; undefined when neither exists. */
    readonly lookup: (provider: string, model: string) => ModelPrice | undefined
  }
}

/** `record[key]` when it is the record's own (never `__proto__` or `constructor`). */
const own = <A>(record: Readonly<Record<string, A>>, key: string): A | undefined =>
  Object.hasOwn(record, key) ? record[key] : undefined

/**
 * The `Pricing` service over a table.
 *
 * @since 0.1.0
 */
export const make = (table: PriceTable): Pricing.Service => ({
  table,
  lookup: (provider, model) => {
    const models = own(table.prices, provider)
    return models === undefined ? undefined : own(models, model) ?? own(models, "*")
  }
})

const defaultPricing = make(bundled)

/**
 * A table with `prices` laid over it, model by model: a model given
 * replaces its entry whole, the others stay. Its date and sources stay the
 * table's.
 *
 * @since 0.1.0
 */
export const extend = (table: PriceTable, prices: Prices): PriceTable => {
  const merged: Record<string, Readonly<Record<string, ModelPrice>>> = { ...table.prices }
  for (const provider of Object.keys(prices)) {
    Object.defineProperty(merged, provider, {
      value: { ...own(table.prices, provider), ...prices[provider] },
      enumerable: true,
      writable: true,
      configurable: true
    })
  }
  return { ...table, prices: merged }
}

/**
 * The prices in context (the bundled table by default) with `prices` laid
 * over them (`extend`). Give it to a backend's layer with `Layer.provide`:
 * the backend reads its prices when it is built.
 *
 * @since 0.1.0
 */
export const layer = (prices: Prices): Layer.Layer<Pricing> =>
  Layer.effect(Pricing, Effect.map(Pricing, (current) => make(extend(current.table, prices))))

/**
 * Only the given table: models it does not price have no cost.
 *
 * @since 0.1.0
 */
export const layerTable = (table: PriceTable): Layer.Layer<Pricing> => Layer.succeed(Pricing, make(table))

/**
 * Whether a price is nothing at all (a local backend's): such a model costs
 * 0 even when its server reports no usage.
 *
 * @since 0.1.0
 */
export const isFree = (price: ModelPrice): boolean =>
  price.input === 0 && price.output === 0 && (price.cacheRead ?? 0) === 0 && (price.cacheWrite ?? 0) === 0

/**
 * The cost in US dollars of `usage` at `price`: the prompt tokens neither
 * read from nor written to the cache at `input`, those read at `cacheRead`,
 * those written at `cacheWrite`, the output (reasoning included) at `output`.
 *
 * @since 0.1.0
 */
export const cost = (price: ModelPrice, usage: Usage): number => {
  const read = usage.cachedInputTokens ?? 0
  const written = usage.cacheWriteInputTokens ?? 0
  const fresh = Math.max(0, usage.inputTokens - read - written)
  return (fresh * price.input +
    read * (price.cacheRead ?? price.input) +
    written * (price.cacheWrite ?? price.input) +
    usage.outputTokens * price.output) / 1_000_000
}
