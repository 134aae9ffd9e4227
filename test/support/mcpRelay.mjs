/**
 * Runs an MCP stdio server (the arguments: its command and its own
 * arguments) behind this process, passing stdin and stdout through, and
 * records every JSON-RPC line in the file MCP_RELAY_LOG: `in <json>` for
 * what reached the server, `out <json>` for what it answered. A test reads
 * there what the server received, without changing the server.
 */
import { spawn } from "node:child_process"
import { appendFileSync } from "node:fs"
import process from "node:process"

const [command, ...args] = process.argv.slice(2)
const child = spawn(command, args, { stdio: ["pipe", "pipe", "ignore"] })

const recorder = (direction) => {
  let pending = ""
  return (chunk) => {
    pending += chunk.toString("utf8")
    let end
    while ((end = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, end).trim()
      pending = pending.slice(end + 1)
      if (line !== "" && process.env.MCP_RELAY_LOG) appendFileSync(process.env.MCP_RELAY_LOG, `${direction} ${line}\n`)
    }
  }
}

const fromClient = recorder("in")
const fromServer = recorder("out")
process.stdin.on("data", (chunk) => {
  fromClient(chunk)
  child.stdin.write(chunk)
})
process.stdin.on("end", () => child.stdin.end())
child.stdout.on("data", (chunk) => {
  fromServer(chunk)
  process.stdout.write(chunk)
})
child.on("exit", (code) => process.exit(code ?? 0))
process.on("SIGTERM", () => child.kill("SIGTERM"))
