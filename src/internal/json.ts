/** Reading fields of parsed JSON without Schema: the hot path of the codecs. */

/** A parsed JSON object. @internal */
export type Json = Record<string, unknown>

/** Whether a value is a JSON object (not null, not an array). @internal */
export const isObject = (u: unknown): u is Json => typeof u === "object" && u !== null && !Array.isArray(u)

/** The value if it is a string. @internal */
export const asString = (u: unknown): string | undefined => (typeof u === "string" ? u : undefined)

/** The value if it is a finite number. @internal */
export const asNumber = (
  u: unknown
): number | undefined => (typeof u === "number" && Number.isFinite(u) ? u : undefined)

/** The deepest nesting of objects and arrays accepted in tool arguments: no tool schema needs more. @internal */
export const maxDepth = 64

/** Whether a JSON value nests objects or arrays `limit` levels deep or more (iterative: never overflows itself). @internal */
export const nestsDeeperThan = (value: unknown, limit: number = maxDepth): boolean => {
  const pending: Array<readonly [unknown, number]> = [[value, 0]]
  while (pending.length > 0) {
    const [current, depth] = pending.pop()!
    if (typeof current !== "object" || current === null) continue
    if (depth >= limit) return true
    for (const child of Array.isArray(current) ? current : Object.values(current)) pending.push([child, depth + 1])
  }
  return false
}
