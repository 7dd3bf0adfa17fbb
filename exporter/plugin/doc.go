// Package plugin is the out-of-process exporter: an output type served by
// a program configured in kilnd.toml ([[exporter.plugin]]) instead of Go
// code compiled into kilnd.
//
// # Protocol
//
// For each export to `--output type=NAME,key=value,...` kilnd starts the
// plugin's command (an absolute path, no shell) as the user kilnd runs
// as, in its own process group, with working directory / and this
// environment, nothing else inherited:
//
//	PATH                      a fixed system PATH (env may replace it)
//	KILN_EXPORTER_VERSION     the protocol version, 1
//	KILN_EXPORTER_NAME        NAME
//	KILN_EXPORTER_ATTRS       the output's attributes as a JSON object
//	                          ({"dest":"/srv/app.tar","name":"app:1"})
//	KILN_EXPORTER_ATTR_<KEY>  each attribute, KEY upper-cased with every
//	                          other character than A-Z and 0-9 as '_'
//	                          (left out when two keys map to one name;
//	                          KILN_EXPORTER_ATTRS always has them all)
//	the [[exporter.plugin]] env entries
//
// Its standard input is the result as an OCI image layout tar stream, the
// same bytes type=oci writes (oci-layout, blobs/sha256/..., index.json
// last), with type=oci's layout attributes applied by kilnd: name (in
// index.json), compression, compression-level, force-compression,
// oci-mediatypes, rewrite-timestamp, annotation*. The plugin reads it to
// the end. What it prints on standard output, if anything,
// is one JSON object of strings merged into the build's metadata (kiln
// build --metadata-file): {"location":"s3://bucket/app.tar"}; kilnd's own
// keys (containerimage.digest, ...) keep their values. Standard error
// goes to the build's progress, under the step "exporting to NAME"
// (the first MaxLog bytes). Exit status 0 is success; any other fails the
// build with an error naming the plugin and the end of its stderr. A
// cancelled build, a failing sibling output or the configured timeout
// kills the plugin's process group.
//
// Every attribute reaches the plugin, the layout ones too; the others
// are the plugin's to read or refuse (exit non-zero with a message).
//
// This package imports exporter, progress, core/errdefs and
// internal/proclog from Kiln.
package plugin
