/**
 * A provider configuration's safety checks, run once when its layer is built:
 * what must never be sent, and the base URL's user info turned into Basic
 * credentials.
 *
 * @internal
 */
import type { ProviderConfig } from "./httpProvider.js"
import { entryProblem, reservedFields } from "./providerOptions.js"
import * as RateLimiter from "./rateLimiter.js"
import * as Retry from "./retry.js"
import {
  describeBaseUrlProblem,
  durationProblem,
  hasLineBreak,
  headerValueProblem,
  isInsecureRemote,
  parseBaseUrl,
  plainHttpRefusal
} from "./validate.js"

/** The layer option each header is set from, named in refusals (never the value). */
const headerOptions: Readonly<Record<string, string>> = {
  authorization: "apiKey",
  "x-api-key": "apiKey",
  "http-referer": "referer",
  "x-title": "title",
  "openai-organization": "organization",
  "openai-project": "project",
  "anthropic-beta": "anthropicBeta"
}

const describeHeader = (name: string) =>
  Object.hasOwn(headerOptions, name) ? `the ${headerOptions[name]!} option (the ${name} header)` : `the ${name} header`

/** The layer's durations, by the option that sets them. */
const durationsOf = (config: ProviderConfig) =>
  [
    ["timeout", config.timeout],
    ["firstTokenTimeout", config.firstTokenTimeout],
    ["idleTimeout", config.idleTimeout]
  ] as const

/** A configuration as requests use it: where they go, what they carry, and what must never be shown back. */
export interface Resolved {
  /** Why this configuration must not send anything, if it must not. */
  readonly unsafe: string | undefined
  /** The base URL without its user info. */
  readonly baseUrl: string
  /** The layer's headers, with Basic credentials from the base URL's user info. */
  readonly headers: Readonly<Record<string, string>>
  /** Credentials a server might echo back in its error text. */
  readonly secrets: ReadonlyArray<string>
}

/**
 * Checks a configuration once, when the layer is built: a header value that
 * could smuggle another header or that a header cannot carry, a base URL that
 * is not http(s), a duration that is not one, provider options that are not
 * JSON or would replace what a call sends, credentials over plain http to
 * a remote host. Takes the base URL's user info out of it, as Basic
 * credentials. Every call of a configuration that is `unsafe` fails with it.
 */
export const resolveConfiguration = (config: ProviderConfig): Resolved => {
  const keys = ["authorization", "x-api-key"].flatMap((name) => {
    const value = config.headers[name]
    return value === undefined ? [] : [value.replace(/^Bearer\s+/i, "")]
  })
  const refused = (unsafe: string, secrets = keys): Resolved => ({
    unsafe,
    baseUrl: config.baseUrl,
    headers: config.headers,
    secrets
  })
  for (const name in config.headers) {
    if (/[\r\n:]/.test(name)) return refused(`the ${name} header contains a line break`)
    const problem = headerValueProblem(config.headers[name]!)
    if (problem !== undefined) return refused(`${describeHeader(name)} ${problem}`)
  }
  if (hasLineBreak(config.model)) return refused("the model name contains a line break")
  for (const [option, input] of durationsOf(config)) {
    const problem = durationProblem(input)
    if (problem !== undefined) return refused(`the ${option} option ${problem}`)
  }
  if (config.providerOptions !== undefined) {
    const reserved = { ...reservedFields, ...config.codec.reservedFields }
    const problem = entryProblem(config.providerOptions, "providerOptions", reserved)
    if (problem !== undefined) return refused(`the layer's ${problem}`)
  }
  const retryProblem = Retry.problem(config.retry)
  if (retryProblem !== undefined) return refused(retryProblem)
  const rateLimitProblem = RateLimiter.problem(config.rateLimit)
  if (rateLimitProblem !== undefined) return refused(rateLimitProblem)
  const base = parseBaseUrl(config.baseUrl)
  if ("invalid" in base) return refused(describeBaseUrlProblem(config.baseUrl, base))
  const secrets = [...keys, ...base.secrets]
  if (base.authorization !== undefined && "authorization" in config.headers) {
    return refused(
      "the base URL's user info would be sent as Basic authorization, and the API key (apiKey) is sent as the authorization header: give one of them",
      secrets
    )
  }
  const sendsKey = base.authorization !== undefined || "authorization" in config.headers ||
    "x-api-key" in config.headers
  if (sendsKey && isInsecureRemote(base.parsed) && config.allowInsecureHttp !== true) {
    const what = base.authorization === undefined ? "the API key" : "the base URL's credentials"
    return refused(plainHttpRefusal(what, base.parsed.host), secrets)
  }
  return {
    unsafe: undefined,
    baseUrl: base.url,
    headers: base.authorization === undefined
      ? config.headers
      : { ...config.headers, authorization: base.authorization },
    secrets
  }
}
