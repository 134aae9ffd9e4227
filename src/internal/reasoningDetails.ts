/**
 * OpenRouter's `reasoning_details`: the typed entries (`reasoning.text` with
 * its signature, `reasoning.summary`, `reasoning.encrypted`) a reply's
 * reasoning comes in, folded from a stream's fragments into whole entries,
 * kept to be sent back as they came.
 */
import type { JsonObject } from "../Message.js"

/** The fields whose fragments are pieces of one string; any other field's latest non-empty value wins. */
const joined = new Set(["text", "summary", "data"])

const isEntry = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/** The readable text an entry carries: a text entry's `text`, a summary's `summary`; nothing for encrypted data. */
const textOf = (entry: Record<string, unknown>): string => {
  const value = entry.type === "reasoning.summary" ? entry.summary : entry.text
  return typeof value === "string" ? value : ""
}

/**
 * The entries of one reply. A stream sends each entry in fragments sharing
 * its `index` (the text in pieces, the signature in a fragment of its own);
 * a fragment without an index is an entry of its own.
 */
export class ReasoningDetails {
  private readonly entries: Array<Record<string, unknown>> = []
  private readonly byIndex = new Map<number, Record<string, unknown>>()

  /** Folds one delta's (or one whole message's) `reasoning_details` in; gives the text those fragments carry. */
  push(fragments: ReadonlyArray<unknown>): string {
    let text = ""
    for (const fragment of fragments) {
      if (!isEntry(fragment)) continue
      text += textOf(fragment)
      const index = typeof fragment.index === "number" ? fragment.index : undefined
      const entry = index === undefined ? undefined : this.byIndex.get(index)
      if (entry === undefined) {
        const fresh = { ...fragment }
        this.entries.push(fresh)
        if (index !== undefined) this.byIndex.set(index, fresh)
        continue
      }
      for (const key in fragment) {
        const value = fragment[key]
        if (joined.has(key) && typeof value === "string" && typeof entry[key] === "string") {
          entry[key] = (entry[key] as string) + value
        } else if (value !== undefined && value !== null && value !== "") {
          entry[key] = value
        }
      }
    }
    return text
  }

  /** The whole entries, in order; undefined when there were none. */
  result(): ReadonlyArray<JsonObject> | undefined {
    return this.entries.length === 0 ? undefined : this.entries
  }
}

/**
 * The entries to send back with an assistant message: those of its parts,
 * in order; undefined when it has none.
 */
export const detailsToSend = (
  parts: ReadonlyArray<{ readonly details?: ReadonlyArray<JsonObject> | undefined }> | undefined
): ReadonlyArray<JsonObject> | undefined => {
  if (parts === undefined) return undefined
  const out: Array<JsonObject> = []
  for (const part of parts) if (part.details !== undefined) { for (const entry of part.details) out.push(entry) }
  return out.length === 0 ? undefined : out
}
