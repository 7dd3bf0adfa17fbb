package depcheck

// The layers of Kiln's packages, bottom first. A package imports only
// Kiln packages of lower layers: the arrows point down. Placing a package
// says what it may build on; a new package gets a row in Table.
const (
	// Base imports no Kiln package: error classes, the wire contract,
	// progress events, the session and op interfaces.
	Base = iota
	// Vocabulary is the shared types and helpers everything else speaks:
	// sandbox modes, configuration, registry access, attribute parsing,
	// single-flight, the step cache interfaces.
	Vocabulary
	// Model is the build graph and the machine's primitives: content
	// store, snapshots, the executor interface, the Go client.
	Model
	// Mechanism is what does one job: the frontend interface, the solver,
	// the ops, the sources, layer making, the image store, the test
	// harnesses.
	Mechanism
	// Parts are assembled from mechanisms: the exporters, the remote
	// caches, the Dockerfile converter, gc, the image source.
	Parts
	// Assembly is the worker, the cache backends and the Dockerfile
	// frontend.
	Assembly
	// Services are the engine's services (images, runs, disk, history,
	// shared cache records).
	Services
	// Engine assembles a daemon's parts and runs builds.
	Engine
	// Edge is the gRPC API over the engine's services.
	Edge
	// Commands are the binaries and the tools around them.
	Commands
)

// Rule places a package in a layer. May, when set, narrows what it
// imports further: only these Kiln packages.
type Rule struct {
	Layer int
	May   []string
}

// Table places every package of the module (without the module prefix).
func Table() map[string]Rule {
	return map[string]Rule{
		"api":                          {Layer: Base},
		"core/errdefs":                 {Layer: Base, May: []string{}},
		"core/labels":                  {Layer: Base, May: []string{}},
		"core/imageconfig":             {Layer: Base, May: []string{}},
		"progress":                     {Layer: Base, May: []string{}},
		"session":                      {Layer: Base, May: []string{}},
		"ops":                          {Layer: Base, May: []string{}},
		"frontend/dockerfile/shell":    {Layer: Base, May: []string{}},
		"internal/iox":                 {Layer: Base},
		"internal/testroot":            {Layer: Base},
		"internal/depcheck":            {Layer: Base},
		"internal/proclog":             {Layer: Base, May: []string{}},
		"internal/binfmt":              {Layer: Base, May: []string{}},
		"internal/cgroup":              {Layer: Base, May: []string{}},
		"cache/remote/redis/redistest": {Layer: Base},

		"core/sandbox":               {Layer: Vocabulary, May: []string{"core/errdefs"}},
		"config":                     {Layer: Vocabulary, May: []string{"core/errdefs"}},
		"registry":                   {Layer: Vocabulary, May: []string{"core/errdefs"}},
		"executor/user":              {Layer: Vocabulary, May: []string{"core/errdefs"}},
		"internal/attrs":             {Layer: Vocabulary, May: []string{"core/errdefs"}},
		"internal/ctrderr":           {Layer: Vocabulary},
		"internal/flight":            {Layer: Vocabulary, May: []string{"progress"}},
		"sched":                      {Layer: Vocabulary, May: []string{"internal/cgroup"}},
		"frontend/dockerfile/parser": {Layer: Vocabulary, May: []string{"core/errdefs", "frontend/dockerfile/shell"}},
		"cache":                      {Layer: Vocabulary, May: []string{"ops", "progress", "core/errdefs"}},
		"filesync":                   {Layer: Vocabulary},

		"graph":                            {Layer: Model, May: []string{"core/sandbox"}},
		"executor":                         {Layer: Model, May: []string{"core/errdefs", "core/sandbox", "executor/user"}},
		"content":                          {Layer: Model},
		"snapshot":                         {Layer: Model},
		"client":                           {Layer: Model, May: []string{"api", "core/errdefs", "filesync"}},
		"cache/bolt":                       {Layer: Model},
		"cache/memory":                     {Layer: Model},
		"cache/cachetest":                  {Layer: Model},
		"frontend/dockerfile/instructions": {Layer: Model},

		"frontend":              {Layer: Mechanism, May: []string{"graph", "core/errdefs", "core/imageconfig", "core/sandbox"}},
		"frontend/llb":          {Layer: Mechanism, May: []string{"graph", "core/errdefs", "core/sandbox"}},
		"solver":                {Layer: Mechanism, May: []string{"cache", "graph", "ops", "progress", "session", "core/errdefs", "internal/flight"}},
		"imagestore":            {Layer: Mechanism},
		"layer":                 {Layer: Mechanism},
		"executor/runc":         {Layer: Mechanism},
		"ops/exec":              {Layer: Mechanism},
		"ops/file":              {Layer: Mechanism},
		"source/git":            {Layer: Mechanism},
		"source/http":           {Layer: Mechanism},
		"source/local":          {Layer: Mechanism},
		"snapshot/snapshottest": {Layer: Mechanism},
		"internal/snaptest":     {Layer: Mechanism},
		"internal/testutil":     {Layer: Mechanism, May: []string{"core/errdefs", "filesync", "session", "snapshot"}},

		"exporter":                    {Layer: Parts},
		"cache/remote":                {Layer: Parts},
		"frontend/dockerfile/convert": {Layer: Parts},
		"frontend/gateway":            {Layer: Parts, May: []string{"frontend", "frontend/llb", "graph", "core/errdefs", "core/imageconfig", "core/sandbox"}},
		"gc":                          {Layer: Parts, May: []string{"cache", "content", "core/errdefs", "imagestore"}},
		"source/image":                {Layer: Parts},

		"worker":                {Layer: Assembly},
		"exporter/plugin":       {Layer: Assembly, May: []string{"exporter", "progress", "core/errdefs", "internal/proclog"}},
		"cache/remote/local":    {Layer: Assembly},
		"cache/remote/redis":    {Layer: Assembly},
		"cache/remote/registry": {Layer: Assembly},
		"frontend/dockerfile":   {Layer: Assembly},
		"engine/history":        {Layer: Services, May: []string{"core/errdefs", "progress"}},
		"engine/disk":           {Layer: Services},
		"engine/images":         {Layer: Services},
		"engine/run":            {Layer: Services},
		"engine/sharedcache":    {Layer: Services},
		"engine":                {Layer: Engine},
		"daemon":                {Layer: Edge},
		"daemon/metrics":        {Layer: Edge},
		// BuildKit's API is a second edge over the engine, beside daemon's
		// own: it does not know the daemon, and of Kiln's wire types only
		// the sync messages of filesync's receiver (both APIs' contexts go
		// through it).
		"daemon/buildkit":          {Layer: Edge, May: []string{"api", "cache/remote", "config", "core/errdefs", "core/sandbox", "engine", "engine/disk", "engine/history", "exporter", "filesync", "frontend", "progress", "session"}},
		"cmd/kilnd":                {Layer: Commands},
		"cmd/kiln":                 {Layer: Commands},
		"e2e":                      {Layer: Commands},
		"hack/bench":               {Layer: Commands},
		"hack/fixture":             {Layer: Commands},
		"examples/embed":           {Layer: Commands},
		"examples/frontend":        {Layer: Commands},
		"examples/exporter-plugin": {Layer: Commands, May: []string{}},
	}
}
