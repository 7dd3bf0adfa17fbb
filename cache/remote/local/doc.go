// Package local keeps a build cache in an OCI image layout directory on
// the client (--cache-to type=local,dest=DIR and --cache-from
// type=local,src=DIR), as buildx does. The daemon never touches a path of
// its own host: it reads the client's directory through the build session
// (the client offers it under the sync name "cache-from:<i>" or
// "cache-to:<i>", i being the value's position), fetching only the files
// it needs (index.json, the cache manifest and config, and the blobs of
// the records it imports), and writes to it as a tar stream on the build's
// output channel, which the client unpacks into the directory: blobs it
// has are skipped, every blob is checked against its name, and index.json
// is replaced atomically, last.
//
// BuildKit's clients (buildctl, docker buildx) expose the directory as an
// OCI content store on their session instead (ContentStores): the daemon
// reads the manifest the client resolved from its index.json, and blobs,
// through it, and writes blobs into it; the client names the new manifest
// in index.json from the build's response (ManifestKey).
//
// The cache manifest is the same as a registry cache's (see
// cache/remote/registry), named in index.json by the annotation
// org.opencontainers.image.ref.name = tag.
package local
