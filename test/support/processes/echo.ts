/** A child for the process harness's own test: answers each command with it and this process's id. */
import { commands, reply } from "../processes.js"

reply({ ready: process.pid, env: process.env.ECHO_TAG ?? "" })
for await (const command of commands()) {
  reply({ pid: process.pid, command })
}
