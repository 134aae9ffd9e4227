/** Reading fields of parsed JSON without Schema: the hot path of the codecs. */

/** A parsed JSON object. @internal */
export type Json = Record<string, unknown>

/** Whether a value is a JSON object (not null, not an array). @internal */
export const isObject = (u: unknown): u is Json => typeof u === "object" && u !== null && !Array.isArray(u)

/** The value if it is a string. @internal */
export const asString = (u: unknown): string | undefined => (typeof u === "string" ? u : undefined)

/** The value if it is a finite number. @internal */
export const asNumber = (u: unknown): number | undefined => (typeof u === "number" && Number.isFinite(u) ? u : undefined)
