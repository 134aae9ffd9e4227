/**
 * Provider options: extra request-body fields for one backend, from its
 * layer and from the call (keyed by backend name). They are checked to be
 * JSON, refused where they would replace what the call itself sends (the
 * model, the messages, the stream flag, and the fields a codec reserves),
 * and merged key by key, last, into the body the codec encoded.
 *
 * @internal
 */
import { isObject, type Json, maxDepth } from "./json.js"

/**
 * The body fields every request carries from the call itself, and what to use instead of replacing them.
 *
 * @internal
 */
export const reservedFields: Readonly<Record<string, string>> = {
  model: "the model the call sends (use the model option)",
  messages: "the messages the call sends",
  stream: "the stream flag (complete or stream sets it)"
}

/** Names a value for a message: its kind, never its content (it may be a secret). */
const kindOf = (value: unknown): string => {
  if (value === null) return "null"
  if (Array.isArray(value)) return "an array"
  if (typeof value === "object") {
    const name = (value as { constructor?: { name?: unknown } }).constructor?.name
    return typeof name === "string" && name !== "" && name !== "Object" ? `a ${name}` : "an object"
  }
  return typeof value === "undefined" ? "undefined" : `a ${typeof value}`
}

const isPlain = (value: object): boolean => {
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

/**
 * Why `value` (found at `path`) is not JSON that can be sent as it is:
 * plain objects, arrays, strings, finite numbers, booleans and null, nested
 * at most `maxDepth` levels, without cycles. An object's undefined field is
 * unset (dropped, as in the options themselves); undefined in an array is
 * refused, since JSON would turn it into null.
 */
const jsonProblem = (value: unknown, path: string, depth: number, ancestors: Set<object>): string | undefined => {
  switch (typeof value) {
    case "string":
    case "boolean":
      return undefined
    case "number":
      return Number.isFinite(value) ? undefined : `${path} is ${value}, not a finite number`
    case "bigint":
      return `${path} is a bigint, which JSON cannot carry (use a number or a string)`
    case "symbol":
    case "function":
    case "undefined":
      return `${path} is ${typeof value === "undefined" ? "undefined" : `a ${typeof value}`}, which JSON cannot carry`
  }
  if (value === null) return undefined
  const object = value as object
  if (ancestors.has(object)) return `${path} refers back to an object that contains it (a cycle)`
  if (depth >= maxDepth) return `${path} is nested deeper than ${maxDepth} levels`
  if (!Array.isArray(object) && !isPlain(object)) {
    return `${path} is ${kindOf(object)}, not a plain object, an array or a JSON value`
  }
  ancestors.add(object)
  try {
    if (Array.isArray(object)) {
      for (let i = 0; i < object.length; i++) {
        const problem = jsonProblem(object[i], `${path}[${i}]`, depth + 1, ancestors)
        if (problem !== undefined) return problem
      }
      return undefined
    }
    for (const key of Object.keys(object)) {
      if (key === "__proto__") return `${path}.__proto__ is not a field providerOptions may set`
      const field = (object as Json)[key]
      if (field === undefined) continue
      const problem = jsonProblem(field, `${path}.${key}`, depth + 1, ancestors)
      if (problem !== undefined) return problem
    }
    return undefined
  } finally {
    ancestors.delete(object)
  }
}

/**
 * Why one backend's options (at `path`) cannot be sent: not a JSON object,
 * or a field that would replace one of `reserved`.
 *
 * @internal
 */
export const entryProblem = (
  entry: unknown,
  path: string,
  reserved: Readonly<Record<string, string>>
): string | undefined => {
  if (!isObject(entry) || !isPlain(entry)) return `${path} must be a JSON object of body fields, got ${kindOf(entry)}`
  for (const key of Object.keys(entry)) {
    if (Object.hasOwn(reserved, key) && entry[key] !== undefined) {
      return `${path}.${key} would replace ${reserved[key]}; providerOptions never replace it`
    }
  }
  return jsonProblem(entry, path, 0, new Set())
}

/**
 * Why a call's `providerOptions` cannot be sent. Every entry is checked,
 * not only this backend's: the call is as wrong wherever it goes (through a
 * fallback chain it may go to another backend). Every entry may not replace
 * the fields all requests carry; `provider`'s own may not replace the ones
 * its codec reserves either.
 *
 * @internal
 */
export const callProblem = (
  providerOptions: unknown,
  provider: string,
  reserved: Readonly<Record<string, string>>
): string | undefined => {
  if (providerOptions === undefined) return undefined
  if (!isObject(providerOptions) || !isPlain(providerOptions)) {
    return `providerOptions must be an object of body fields by backend name (e.g. { local: { cache_prompt: true } }), got ${
      kindOf(providerOptions)
    }`
  }
  for (const name of Object.keys(providerOptions)) {
    const entry = providerOptions[name]
    if (entry === undefined) continue
    const problem = entryProblem(entry, `providerOptions.${name}`, name === provider ? reserved : reservedFields)
    if (problem !== undefined) return problem
  }
  return undefined
}

/**
 * `over` merged into `base`: objects key by key (recursively), anything
 * else, arrays included, replaced; undefined fields of `over` left out.
 * Neither is modified.
 *
 * @internal
 */
export const merge = (base: Json, over: Json): Json => {
  const out: Json = { ...base }
  for (const key of Object.keys(over)) {
    const value = over[key]
    if (value === undefined) continue
    const current = out[key]
    out[key] = isObject(current) && isObject(value) ? merge(current, value) : value
  }
  return out
}
