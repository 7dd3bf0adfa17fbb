// Package registry resolves image references to registry endpoints and
// talks to them through go-containerregistry: per-host configuration
// (mirrors, plain HTTP, insecure TLS, custom CAs and client certificates),
// credentials (a docker config.json, per-host username/password, and
// credentials the client forwards with a build), and errors that name the
// registry, the reference and the HTTP status, classified with core/errdefs
// (ErrUnauthenticated, ErrNotFound, ErrUnavailable, ...).
//
// A Resolver is built once by the daemon from its configuration:
//
//	r, err := registry.New(map[string]registry.HostConfig{
//		"docker.io":         {Mirrors: []string{"mirror.local:5000"}},
//		"mirror.local:5000": {PlainHTTP: true},
//	}, registry.WithLogger(logger))
//
// and narrowed per build to the credentials that build's client forwards:
//
//	br := r.WithCredentials(sessionCredentials)
//	img, err := br.Image(ctx, ref, platform)
//
// Pulls (Get, Head, Image, Index, Layer) try the host's mirrors in order and
// then the origin; a failing mirror is logged and skipped. Pushes
// (PushOptions, Write, WriteIndex) never use mirrors.
//
// Docker Hub names are normalised as Docker does: "busybox" is
// docker.io/library/busybox:latest, and docker.io, index.docker.io and
// registry-1.docker.io share one configuration entry, "docker.io".
//
// This package imports only core/errdefs from Kiln; the daemon maps its
// configuration onto HostConfig.
package registry
