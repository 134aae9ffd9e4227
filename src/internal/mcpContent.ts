/** An MCP tool result as the text of the tool message the model reads. */
import { asString, isObject, type Json } from "./json.js"

/**
 * The parts of a `tools/call` result that reach the model.
 *
 * @internal
 */
export interface ResultContent {
  readonly content?: ReadonlyArray<Readonly<Record<string, unknown>>> | undefined
  readonly structuredContent?: Readonly<Record<string, unknown>> | undefined
}

/** Bytes a base64 text decodes to. */
const base64Bytes = (data: unknown): number => {
  const text = typeof data === "string" ? data.replace(/\s/g, "") : ""
  const padding = text.endsWith("==") ? 2 : text.endsWith("=") ? 1 : 0
  return Math.max(0, Math.floor((text.length * 3) / 4) - padding)
}

/** JSON with object keys sorted: equal for equal values whatever their key order. */
const canonical = (value: unknown): string =>
  JSON.stringify(value, (_key, inner: unknown) =>
    isObject(inner)
      ? Object.fromEntries(Object.keys(inner).sort().map((key) => [key, inner[key]]))
      : inner)

/** Whether a text block is the JSON of `structured` (what servers add for older clients). */
const repeats = (text: string, structured: Json): boolean => {
  try {
    return canonical(JSON.parse(text)) === canonical(structured)
  } catch {
    return false
  }
}

const mime = (value: unknown): string => {
  const type = asString(value)
  return type === undefined ? "" : ` (${type})`
}

/** One content block as text: text as it is, anything else described. */
const renderBlock = (block: Readonly<Record<string, unknown>>): string => {
  switch (block.type) {
    case "text":
      return asString(block.text) ?? ""
    case "image":
    case "audio":
      return `[${block.type}: ${asString(block.mimeType) ?? "unknown type"}, ${base64Bytes(block.data)} bytes]`
    case "resource": {
      const resource = isObject(block.resource) ? block.resource : {}
      const uri = asString(resource.uri) ?? "(no uri)"
      const text = asString(resource.text)
      return text !== undefined
        ? `[resource ${uri}${mime(resource.mimeType)}]\n${text}`
        : `[resource ${uri}${mime(resource.mimeType)}, ${base64Bytes(resource.blob)} bytes]`
    }
    case "resource_link": {
      const description = asString(block.description)
      return `[resource link: ${asString(block.name) ?? "(unnamed)"} <${asString(block.uri) ?? ""}>${
        mime(block.mimeType)
      }${description === undefined ? "" : `: ${description}`}]`
    }
    default:
      return `[${String(block.type)} content]`
  }
}

/**
 * A tool result as the tool message's text: `structuredContent` as JSON
 * first (without a text block that only repeats it), then each content
 * block in order, one per line: text as it is; images, audio, binary
 * resources and resource links described by type, size and address;
 * embedded text resources with their text.
 *
 * @internal
 */
export const renderResult = (result: ResultContent): string => {
  const structured = result.structuredContent
  const parts: Array<string> = structured === undefined ? [] : [JSON.stringify(structured)]
  for (const block of result.content ?? []) {
    if (structured !== undefined && block.type === "text" && repeats(asString(block.text) ?? "", structured)) continue
    parts.push(renderBlock(block))
  }
  return parts.join("\n")
}
