/** Fitting names from outside (MCP tool names, JSON Schema property keys) into a backend's rules. */

/**
 * The characters of a function (tool) name every backend accepts, as a
 * character class body, and its longest length: `^[a-zA-Z0-9_-]{1,64}$`.
 *
 * @internal
 */
export const functionNameRule = { allowed: "a-zA-Z0-9_-", max: 64 } as const

/**
 * Whether `name` is a function name every backend accepts (`functionNameRule`).
 *
 * @internal
 */
export const isFunctionName = (name: string): boolean => functionNamePattern.test(name)

const functionNamePattern = new RegExp(`^[${functionNameRule.allowed}]{1,${functionNameRule.max}}$`)
const notInFunctionName = new RegExp(`[^${functionNameRule.allowed}]`, "g")

/**
 * `name` with every character a function name cannot hold made `_` (not cut, not checked for collisions).
 *
 * @internal
 */
export const cleanFunctionName = (name: string): string => name.replace(notInFunctionName, "_")

/**
 * A short, stable hash of a text (FNV-1a, 32 bits, 8 hex digits): the suffix
 * that keeps two names apart once they are cut or rewritten to the same text.
 *
 * @internal
 */
export const shortHash = (text: string): string => {
  let hash = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193)
  }
  return (hash >>> 0).toString(16).padStart(8, "0")
}

/**
 * `name` rewritten to match `^[<allowed>]{1,max}$` (`allowed` a character
 * class body such as `a-zA-Z0-9_-`) and to differ from every name in `taken`:
 * other characters become `_`, and a name that had to be cut, or that
 * collides, ends in `_` and a hash of the original. A name that already
 * fits and is free comes back as it is.
 *
 * @internal
 */
export const fitName = (
  name: string,
  options: { readonly allowed: string; readonly max: number; readonly taken: ReadonlySet<string> }
): string => {
  const invalid = new RegExp(`[^${options.allowed}]`, "g")
  const cleaned = name.replace(invalid, "_") || "_"
  if (cleaned.length <= options.max && !options.taken.has(cleaned)) return cleaned
  for (let salt = 0;; salt++) {
    const suffix = `_${shortHash(salt === 0 ? name : `${salt}:${name}`)}`
    const candidate = `${cleaned.slice(0, options.max - suffix.length)}${suffix}`
    if (!options.taken.has(candidate)) return candidate
  }
}
