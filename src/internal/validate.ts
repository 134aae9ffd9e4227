import * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import type { CompletionOptions } from "../Llm.js"
import type { Message } from "../Message.js"
import { isFunctionName } from "./names.js"

const inRange = (value: number | undefined, min: number, max: number): boolean =>
  value === undefined || (Number.isFinite(value) && value >= min && value <= max)

/**
 * The range of a sampling temperature, as messages say it.
 *
 * @internal
 */
export const temperatureRange = "between 0 and 2"

/**
 * Whether `value` is a sampling temperature (a number from 0 to 2).
 *
 * @internal
 */
export const isTemperature = (value: unknown): value is number => typeof value === "number" && value >= 0 && value <= 2

/**
 * Whether `value` is a positive integer (a token limit, a failure threshold).
 *
 * @internal
 */
export const isPositiveInteger = (value: unknown): value is number =>
  typeof value === "number" && Number.isInteger(value) && value > 0

/**
 * Whether `value` is a non-negative integer (a retry count).
 *
 * @internal
 */
export const isNonNegativeInteger = (value: unknown): value is number =>
  typeof value === "number" && Number.isInteger(value) && value >= 0

/**
 * Whether `text` holds a line break (CR or LF), which would end a header
 * line: a model name or header value must not.
 *
 * @internal
 */
export const hasLineBreak = (text: string): boolean => /[\r\n]/.test(text)

/**
 * Why a per-call `model` option cannot be sent (undefined when it can, or is unset).
 *
 * @internal
 */
export const modelProblem = (model: unknown): string | undefined => {
  if (model === undefined) return undefined
  if (typeof model !== "string") return `the model option must be a string, got ${typeof model}`
  if (model.trim() === "") return "the model option is empty"
  if (hasLineBreak(model)) return "the model option contains a line break"
  return undefined
}

/**
 * Checks a request before anything is sent. Returns why it is invalid, or
 * undefined when it may be sent.
 *
 * @internal
 */
export const validateRequest = (
  messages: ReadonlyArray<Message>,
  options: CompletionOptions
): string | undefined => {
  if (messages.length === 0) return "the message list is empty"
  if (options.temperature !== undefined && !isTemperature(options.temperature)) {
    return `temperature must be ${temperatureRange}, got ${options.temperature}`
  }
  if (!inRange(options.topP, 0, 1)) return `topP must be between 0 and 1, got ${options.topP}`
  if (options.maxTokens !== undefined && !isPositiveInteger(options.maxTokens)) {
    return `maxTokens must be a positive integer, got ${options.maxTokens}`
  }
  for (const option of ["timeout", "firstTokenTimeout", "idleTimeout"] as const) {
    const problem = durationProblem(options[option])
    if (problem !== undefined) return `the ${option} option ${problem}`
  }
  const cacheProblem = promptCacheProblem(options.promptCache)
  if (cacheProblem !== undefined) return cacheProblem
  const reasoning = reasoningProblem(options.reasoning)
  if (reasoning !== undefined) return reasoning
  const names = new Set<string>()
  for (const tool of options.tools ?? []) {
    if (!isFunctionName(tool.name)) {
      return `tool name ${
        JSON.stringify(tool.name)
      } is not a valid function name (letters, digits, _ and -, at most 64)`
    }
    if (names.has(tool.name)) return `tool ${JSON.stringify(tool.name)} is defined twice`
    if (tool.parameters.type !== "object") {
      return `tool ${
        JSON.stringify(tool.name)
      }: its parameters must be a JSON Schema with "type": "object" (a Schema.Struct or Schema.Class), got ${
        tool.parameters.type === undefined
          ? "a schema without a type"
          : `"type": ${JSON.stringify(tool.parameters.type)}`
      }`
    }
    names.add(tool.name)
  }
  const choice = options.toolChoice
  if (typeof choice === "object" && !names.has(choice.name)) {
    return `toolChoice names ${JSON.stringify(choice.name)}, which is not among the tools`
  }
  // Every tool result must answer a call of the assistant message before its run of tool messages.
  let open: Set<string> | undefined
  for (let i = 0; i < messages.length; i++) {
    const message = messages[i]!
    if (message.role === "tool") {
      if (open === undefined || !open.has(message.toolCallId)) {
        return `message ${i} is a tool result for ${
          JSON.stringify(message.toolCallId)
        }, which no preceding assistant tool call asked for`
      }
      open.delete(message.toolCallId)
      continue
    }
    if (open !== undefined && open.size > 0) return unanswered(open, i)
    open = message.role === "assistant" && message.toolCalls.length > 0
      ? new Set(message.toolCalls.map((call) => call.id))
      : undefined
    if (message.role === "assistant") {
      for (const call of message.toolCalls) {
        if (!isFunctionName(call.name)) {
          return `message ${i} calls ${JSON.stringify(call.name)}, not a valid function name`
        }
      }
    }
  }
  if (open !== undefined && open.size > 0) return unanswered(open, messages.length)
  return undefined
}

/**
 * Why a `promptCache` option cannot be sent (undefined when it can): an
 * object or `false`, its slot a non-negative integer, its key a non-empty
 * string, its ttl one Anthropic knows.
 */
const promptCacheProblem = (cache: unknown): string | undefined => {
  if (cache === undefined || cache === false) return undefined
  if (typeof cache !== "object" || cache === null) return "promptCache must be an object or false"
  const { key, slot, ttl } = cache as { key?: unknown; slot?: unknown; ttl?: unknown }
  if (slot !== undefined && !isNonNegativeInteger(slot)) {
    return `promptCache.slot must be a non-negative integer, got ${String(slot)}`
  }
  if (key !== undefined && (typeof key !== "string" || key === "")) return "promptCache.key must be a non-empty string"
  if (ttl !== undefined && ttl !== "5m" && ttl !== "1h") {
    return `promptCache.ttl must be "5m" or "1h", got ${JSON.stringify(ttl)}`
  }
  return undefined
}

/** The efforts a reasoning option may name. */
const efforts: ReadonlyArray<unknown> = ["low", "medium", "high"]

/**
 * Why a `reasoning` option is not one of its three shapes (undefined when it
 * is, or is unset): `{ effort }` with a known effort, `{ budgetTokens }` with
 * a positive integer, or `{ enabled: false }`, never two at once.
 *
 * @internal
 */
export const reasoningProblem = (option: unknown): string | undefined => {
  if (option === undefined) return undefined
  if (typeof option !== "object" || option === null || Array.isArray(option)) {
    return `reasoning must be an object ({ effort }, { budgetTokens } or { enabled: false }), got ${
      JSON.stringify(option)
    }`
  }
  const { budgetTokens, effort, enabled } = option as { effort?: unknown; budgetTokens?: unknown; enabled?: unknown }
  if (enabled !== undefined) {
    if (enabled !== false) {
      return `reasoning.enabled can only be false (to turn reasoning on, give effort or budgetTokens), got ${
        JSON.stringify(enabled)
      }`
    }
    if (effort !== undefined || budgetTokens !== undefined) {
      return "reasoning: enabled: false cannot be given with effort or budgetTokens"
    }
    return undefined
  }
  if (effort !== undefined && budgetTokens !== undefined) {
    return "give either reasoning.effort or reasoning.budgetTokens, not both"
  }
  if (effort !== undefined) {
    return efforts.includes(effort)
      ? undefined
      : `reasoning.effort must be "low", "medium" or "high", got ${JSON.stringify(effort)}`
  }
  if (budgetTokens !== undefined) {
    return isPositiveInteger(budgetTokens)
      ? undefined
      : `reasoning.budgetTokens must be a positive integer, got ${JSON.stringify(budgetTokens)}`
  }
  return "reasoning needs effort, budgetTokens or enabled: false"
}

/**
 * Anthropic's smallest thinking budget (`budget_tokens`).
 *
 * @internal
 */
export const minThinkingBudget = 1024

/**
 * Why Anthropic would refuse extended thinking with `budget` tokens for this
 * call (undefined when it would not): a budget under its minimum, a
 * temperature other than 1, a topP under 0.95, a tool choice that forces a
 * tool.
 *
 * @internal
 */
export const thinkingProblem = (options: CompletionOptions, budget: number): string | undefined => {
  if (budget < minThinkingBudget) {
    return `reasoning.budgetTokens must be at least ${minThinkingBudget} for Anthropic's extended thinking, got ${budget}`
  }
  if (options.temperature !== undefined && options.temperature !== 1) {
    return `Anthropic's extended thinking takes no temperature but 1, got ${options.temperature}; leave temperature unset or turn reasoning off`
  }
  if (options.topP !== undefined && options.topP < 0.95) {
    return `Anthropic's extended thinking takes topP from 0.95 to 1 only, got ${options.topP}`
  }
  const choice = options.toolChoice
  if (choice === "required" || typeof choice === "object") {
    return `toolChoice ${
      JSON.stringify(choice)
    } forces a tool, which Anthropic's extended thinking does not allow; use "auto" or turn reasoning off`
  }
  return undefined
}

const unanswered = (open: Set<string>, index: number): string =>
  `the tool calls ${[...open].map((id) => JSON.stringify(id)).join(", ")} before message ${index} have no tool result`

/**
 * Why `input` is not a usable duration (undefined when it is, or is unset):
 * it must decode as a `Duration.DurationInput` and must not be negative or
 * NaN, which `Duration.decode` would silently turn into zero.
 *
 * @internal
 */
export const durationProblem = (input: unknown): string | undefined => {
  if (input === undefined) return undefined
  const negative = typeof input === "number"
    ? !(input >= 0)
    : typeof input === "bigint"
    ? input < 0n
    : typeof input === "string"
    ? /^\s*-/.test(input)
    : Array.isArray(input) && input.some((part) => !(Number(part) >= 0))
  if (!negative && Option.isSome(Duration.decodeUnknown(input))) return undefined
  return `is not a duration: expected a non-negative duration such as "30 seconds", "500 millis" or a number of milliseconds, got ${
    typeof input === "bigint" ? `${input}n` : JSON.stringify(input) ?? String(input)
  }`
}

/** What a header value may hold (RFC 9110 field-value, ASCII only): visible characters, space and tab. */
const fieldValue = /^[\t\x20-\x7e]*$/

/**
 * Why `value` cannot be sent as a header value (undefined when it can).
 * Never says what the value is: it may be a key.
 *
 * @internal
 */
export const headerValueProblem = (value: string): string | undefined =>
  hasLineBreak(value)
    ? "contains a line break"
    : fieldValue.test(value)
    ? undefined
    : "contains a character a header cannot carry (only visible ASCII, space and tab are allowed)"

/** The user info of a URL with a scheme (`https://user:key@host`). */
const userInfo = /^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i

/**
 * A URL as messages show it: its user info (`https://user:key@host`) masked
 * as `***@`.
 *
 * @internal
 */
export const displayUrl = (url: string): string => url.replace(userInfo, "$1***@")

/** A base URL checked and split: where requests go, and the credentials its user info carries. */
export interface BaseUrl {
  /** The URL without its user info (as given when it had none). */
  readonly url: string
  /** Its parsed form (without user info). */
  readonly parsed: URL
  /** `Basic <base64(user:password)>` from its user info, percent-decoded; undefined without user info. */
  readonly authorization: string | undefined
  /** What a server must never be shown back: the password (as written and decoded) and the Basic token. */
  readonly secrets: ReadonlyArray<string>
}

/** Why a base URL cannot be used, and the URL the user probably meant (`http://` + what they wrote) when there is one. */
export interface BaseUrlProblem {
  readonly invalid: "notHttp" | "badUserInfo"
  readonly suggestion?: string | undefined
}

const isHttp = (url: URL) => (url.protocol === "http:" || url.protocol === "https:") && url.hostname !== ""

const parseUrl = (text: string): URL | undefined => {
  try {
    return new URL(text)
  } catch {
    return undefined
  }
}

/**
 * Checks a base URL: it must be `http://` or `https://` with a host. Its user
 * info, if any, is taken out of the URL and turned into Basic credentials.
 *
 * @internal
 */
export const parseBaseUrl = (baseUrl: string): BaseUrl | BaseUrlProblem => {
  // the slashes are required: `https:/v1` parses (as host `v1`), but no one means it
  const parsed = /^https?:\/\//i.test(baseUrl) ? parseUrl(baseUrl) : undefined
  if (parsed === undefined || !isHttp(parsed)) {
    const guess = /^[a-z][a-z0-9+.-]*:\/\/|^https?:/i.test(baseUrl) ? undefined : parseUrl(`http://${baseUrl}`)
    return {
      invalid: "notHttp",
      suggestion: guess !== undefined && isHttp(guess) ? displayUrl(guess.href.replace(/\/$/, "")) : undefined
    }
  }
  if (parsed.username === "" && parsed.password === "") {
    return { url: baseUrl, parsed, authorization: undefined, secrets: [] }
  }
  let user: string
  let password: string
  try {
    user = decodeURIComponent(parsed.username)
    password = decodeURIComponent(parsed.password)
  } catch {
    return { invalid: "badUserInfo" }
  }
  const token = Buffer.from(`${user}:${password}`, "utf8").toString("base64")
  const secrets = [token, ...(password === "" ? [] : [password, parsed.password])]
  parsed.username = ""
  parsed.password = ""
  return { url: parsed.href, parsed, authorization: `Basic ${token}`, secrets }
}

/**
 * What a base URL problem means, for a message: the URL masked, what is
 * expected and, when there is one, the URL the user probably meant.
 *
 * @internal
 */
export const describeBaseUrlProblem = (baseUrl: string, problem: BaseUrlProblem): string =>
  problem.invalid === "badUserInfo"
    ? `the base URL ${JSON.stringify(displayUrl(baseUrl))} has user info that is not valid percent-encoding`
    : `the base URL ${JSON.stringify(displayUrl(baseUrl))} is not an http:// or https:// URL with a host${
      problem.suggestion === undefined ? "" : `; did you mean ${JSON.stringify(problem.suggestion)}?`
    }`

/**
 * The refusal to send `what` (credentials) over plain http to `host`, a host
 * that is not loopback.
 *
 * @internal
 */
export const plainHttpRefusal = (what: string, host: string): string =>
  `refusing to send ${what} over plain http to ${host}; use https or set allowInsecureHttp`

const loopbackHost = /^(localhost|127\.\d+\.\d+\.\d+|\[::1\])$/

/** Whether sending credentials to `url` would cross the network in plain text (http to a non-loopback host). */
export const isInsecureRemote = (url: URL): boolean => url.protocol === "http:" && !loopbackHost.test(url.hostname)
