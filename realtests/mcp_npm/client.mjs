// An independent MCP client for the LiteLLM lab: the TypeScript SDK over streamable HTTP (realtests/mcp_lab.py).
// stdin: {"url", "headers", "ops": [{"op": "list"} | {"op": "call", "name", "args"}]}
// stdout: {"ops": [{"tools"} | {"text", "is_error"} | {"error"}], "error": string|null}
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const request = JSON.parse(Buffer.concat(chunks).toString());

const results = [];
let error = null;
const client = new Client({ name: "agent-platform-lab", version: "1.0.0" });
try {
  const transport = new StreamableHTTPClientTransport(new URL(request.url), {
    requestInit: { headers: request.headers },
  });
  await client.connect(transport);
  for (const op of request.ops) {
    try {
      if (op.op === "list") {
        const { tools } = await client.listTools();
        results.push({ tools: tools.map((t) => t.name).sort() });
      } else {
        const result = await client.callTool({ name: op.name, arguments: op.args ?? {} });
        const text = result.content.map((part) => part.text ?? "").join("\n");
        results.push({ text, is_error: Boolean(result.isError) });
      }
    } catch (failure) {
      results.push({ error: String(failure) });
    }
  }
} catch (failure) {
  error = String(failure);
} finally {
  await client.close().catch(() => {});
}
process.stdout.write(JSON.stringify({ ops: results, error }));
