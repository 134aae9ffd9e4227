/**
 * Reading what a provider's error body says, whatever shape it has.
 *
 * @internal
 */
import { asNumber, asString, isObject, type Json } from "./json.js"

/** What an error body says: the provider's error type and code, its message, and the sizes of an overflow. @internal */
export interface ErrorBody {
  type?: string
  code?: string
  message?: string
  /** llama-server's `n_prompt_tokens`: the prompt's size. */
  promptTokens?: number
  /** llama-server's `n_ctx`: the context's size. */
  contextTokens?: number
}

/**
 * Reads an error body (parsed JSON, or the raw text when it is not JSON), in
 * every common shape: `{error:{message,type,code}}` (OpenAI, llama.cpp,
 * Ollama's OpenAI API), `{type:"error",error:{type,message}}` (Anthropic),
 * `{error:"text"}` (LM Studio, Ollama), a flat `{message,type}` (vLLM),
 * `{detail:"text"}` and `{detail:[{loc,msg}]}` (FastAPI servers: vLLM, SGLang),
 * OpenRouter's `error.metadata` (the upstream provider's own reason in `raw`,
 * a moderation's `reasons`), llama-server's overflow sizes (`n_prompt_tokens`,
 * `n_ctx`), an error string that is itself such a body (a proxy relaying
 * llama-server's), and plain text. Nothing is cut or redacted here:
 * the error built from it redacts first, then cuts.
 *
 * @internal
 */
export const readErrorBody = (body: unknown): ErrorBody => read(body, 0)

const read = (body: unknown, depth: number): ErrorBody => {
  if (typeof body === "string") {
    const text = body.trim()
    return text === "" ? {} : { message: text }
  }
  if (!isObject(body)) return {}
  const relayed = depth < 2 ? relayedOf(body.error, depth) : undefined
  if (relayed !== undefined) return relayed
  const error = isObject(body.error) ? body.error : undefined
  const source = error ?? body
  const out: ErrorBody = {}
  const type = asString(source.type)
  // Anthropic's envelope `{type:"error", error:{…}}`: "error" names the event, not the failure
  if (type !== undefined && !(error === undefined && type === "error")) out.type = type
  const code = source.code
  if (typeof code === "string" || typeof code === "number") out.code = String(code)
  const promptTokens = sizeOf(source.n_prompt_tokens)
  if (promptTokens !== undefined) out.promptTokens = promptTokens
  const contextTokens = sizeOf(source.n_ctx)
  if (contextTokens !== undefined) out.contextTokens = contextTokens
  const message = (error === undefined ? undefined : asString(error.message) ?? detailOf(error.detail)) ??
    asString(body.error) ?? asString(body.message) ?? detailOf(body.detail)
  const upstream = error !== undefined && isObject(error.metadata) ? metadataOf(error.metadata, depth) : undefined
  if (upstream !== undefined && upstream !== message) {
    out.message = message === undefined ? upstream : `${message} (${upstream})`
  } else if (message !== undefined) {
    out.message = message
  }
  return out
}

/** A count of tokens given as a field: a non-negative integer. */
const sizeOf = (value: unknown): number | undefined => {
  const n = asNumber(value)
  return n !== undefined && Number.isInteger(n) && n >= 0 ? n : undefined
}

/** `{error: "<an error body as JSON text>"}`: what that body says, when it says something. */
const relayedOf = (error: unknown, depth: number): ErrorBody | undefined => {
  if (typeof error !== "string" || !error.trimStart().startsWith("{")) return undefined
  try {
    const inner = read(JSON.parse(error), depth + 1)
    return inner.message === undefined ? undefined : inner
  } catch {
    return undefined
  }
}

/** FastAPI's `detail`: a string, or validation errors `[{loc:[…], msg}]`. */
const detailOf = (detail: unknown): string | undefined => {
  if (typeof detail === "string") return detail.trim() === "" ? undefined : detail
  if (isObject(detail)) return asString(detail.message) ?? asString(detail.msg)
  if (!Array.isArray(detail)) return undefined
  const parts: Array<string> = []
  for (const item of detail) {
    if (typeof item === "string") parts.push(item)
    else if (isObject(item)) {
      const msg = asString(item.msg) ?? asString(item.message)
      if (msg === undefined) continue
      const loc = Array.isArray(item.loc) ? item.loc.filter((part) => typeof part !== "object").join(".") : ""
      parts.push(loc === "" ? msg : `${loc}: ${msg}`)
    }
  }
  return parts.length === 0 ? undefined : parts.join("; ")
}

/** OpenRouter's `error.metadata`: the upstream provider and its own error (`raw`), or a moderation's reasons. */
const metadataOf = (metadata: Json, depth: number): string | undefined => {
  const provider = asString(metadata.provider_name)
  const raw = depth < 2 ? rawOf(metadata.raw, depth) : undefined
  const reasons = Array.isArray(metadata.reasons)
    ? metadata.reasons.filter((reason): reason is string => typeof reason === "string")
    : []
  const said = raw ?? (reasons.length > 0 ? `flagged: ${reasons.join(", ")}` : undefined)
  if (said === undefined) return undefined
  return provider === undefined ? said : `${provider}: ${said}`
}

/** The upstream's error: its message when `raw` is (or holds) an error body, else its text. */
const rawOf = (raw: unknown, depth: number): string | undefined => {
  if (typeof raw === "string") {
    const text = raw.trim()
    if (text === "") return undefined
    if (text.startsWith("{")) {
      try {
        return read(JSON.parse(text), depth + 1).message ?? text
      } catch {
        // not JSON after all: the text itself
      }
    }
    return text
  }
  if (isObject(raw)) return read(raw, depth + 1).message ?? JSON.stringify(raw)
  return undefined
}
