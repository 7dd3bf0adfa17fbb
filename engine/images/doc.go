// Package images is the engine's image service: the commands on the
// daemon's local images (kiln images, image rm|inspect|tag|import|push|
// save). It reads images from the content store through the image store,
// imports archives and root filesystems through the puller, pushes
// through the registry resolver and writes OCI or docker-load tarballs.
//
//	svc := images.New(images.Options{Content: cs, Store: store, Puller: puller, Resolver: resolver, TempDir: tmp})
//	imgs, err := svc.List(ctx)
//	res, err := svc.Import(ctx, images.ImportRequest{Name: "app:1"}, file)
//	err = svc.Save(ctx, images.SaveRequest{Names: []string{"app:1"}}, w)
//
// Requests and results are typed; errors carry core/errdefs classes and
// say what the user named ("image \"foo:latest\" not found in kilnd's
// image store"). The package imports content, imagestore, registry,
// source/image, layer and core.
package images
