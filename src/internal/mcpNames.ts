/** The names MCP tools are offered to the model under. */
import { cleanFunctionName as clean, fitName, functionNameRule } from "./names.js"

const { allowed, max: maxLength } = functionNameRule

/**
 * One server's tools, by the names it lists them under.
 *
 * @internal
 */
export interface ServerTools {
  readonly server: string
  /** Prefix every tool of this server with its name. */
  readonly prefix: boolean
  readonly tools: ReadonlyArray<string>
}

/**
 * The model-facing name of every tool, per server (in the order given): the
 * tool's own name, or `<server>_<tool>` when the server asks for prefixes or
 * another server has a tool of the same name; then fitted to what every
 * backend accepts (other characters become `_`, at most 64) and made unique
 * (a hash of the original ends a name that had to be cut or still collides).
 *
 * @internal
 */
export const modelNames = (servers: ReadonlyArray<ServerTools>): Array<Map<string, string>> => {
  const owners = new Map<string, number>()
  for (const { tools } of servers) {
    for (const base of new Set(tools.map(clean))) owners.set(base, (owners.get(base) ?? 0) + 1)
  }
  const taken = new Set<string>()
  return servers.map(({ prefix, server, tools }) => {
    const names = new Map<string, string>()
    for (const tool of tools) {
      if (names.has(tool)) continue
      const shared = (owners.get(clean(tool)) ?? 0) > 1
      const wanted = prefix || shared ? `${server}_${tool}` : tool
      const name = fitName(wanted, { allowed, max: maxLength, taken })
      taken.add(name)
      names.set(tool, name)
    }
    return names
  })
}
