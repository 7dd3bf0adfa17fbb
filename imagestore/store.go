package imagestore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"sort"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/kiln-build/kiln/content"
	"github.com/kiln-build/kiln/core/errdefs"
	"github.com/kiln-build/kiln/registry"
)

// bucketImages maps a full image name to its JSON record.
var bucketImages = []byte("images.v1")

// Image is a named local image.
type Image struct {
	// Name is the full, normalised name: "docker.io/library/app:latest".
	// Show it with FamiliarName.
	Name string
	// Target is the image's manifest, or its index for a multi-platform
	// image. The blob is in the content store.
	Target ocispec.Descriptor
	// Created is when the name was first stored, Updated when it last
	// changed. Put sets both.
	Created, Updated time.Time
	// Labels are free-form annotations of the record (not of the image).
	Labels map[string]string
}

// record is an Image as stored (the name is the key).
type record struct {
	Target  ocispec.Descriptor `json:"target"`
	Created time.Time          `json:"created"`
	Updated time.Time          `json:"updated"`
	Labels  map[string]string  `json:"labels,omitempty"`
}

// Store is the named-image store. It is safe for concurrent use.
type Store struct {
	db  *bolt.DB
	cs  content.Store
	now func() time.Time
}

// New returns the image store kept in db (the daemon's metadata.db, which
// the caller opens and closes), creating its bucket. cs is the content
// store the images' blobs live in.
func New(db *bolt.DB, cs content.Store) (*Store, error) {
	if db == nil || cs == nil {
		return nil, errdefs.Invalidf("image store: nil database or content store")
	}
	err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketImages)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("create image store bucket: %w", err)
	}
	return &Store{db: db, cs: cs, now: time.Now}, nil
}

// Get returns the image stored under name (any form NormalizeName accepts:
// "app", "app:1", "docker.io/library/app:1"). A reference by digest
// ("app@sha256:...") finds the image of that repository whose target has
// that digest. A missing image is an errdefs.ErrNotFound error.
func (s *Store) Get(ctx context.Context, ref string) (Image, error) {
	if err := ctx.Err(); err != nil {
		return Image{}, err
	}
	r, err := registry.ParseReference(ref)
	if err != nil {
		return Image{}, err
	}
	if d, ok := r.(name.Digest); ok {
		return s.getByDigest(d)
	}
	full := registry.NormalizedName(r)
	var img Image
	err = s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketImages).Get([]byte(full))
		if v == nil {
			return errdefs.NotFoundf("image %s: no such image", FamiliarName(full))
		}
		img, err = decode(full, v)
		return err
	})
	return img, err
}

// getByDigest finds the image of d's repository whose target is d's digest.
func (s *Store) getByDigest(d name.Digest) (Image, error) {
	prefix := []byte(RepositoryName(d.Context()) + ":")
	var found *Image
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketImages).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			img, err := decode(string(k), v)
			if err != nil {
				return err
			}
			if img.Target.Digest.String() == d.DigestStr() {
				found = &img
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return Image{}, err
	}
	if found == nil {
		return Image{}, errdefs.NotFoundf("image %s: no such image", FamiliarName(registry.NormalizedName(d)))
	}
	return *found, nil
}

func decode(full string, v []byte) (Image, error) {
	var r record
	if err := json.Unmarshal(v, &r); err != nil {
		return Image{}, errdefs.WithClass(errdefs.ErrInternal, fmt.Errorf("image %s: corrupt record: %w", full, err))
	}
	return Image{Name: full, Target: r.Target, Created: r.Created, Updated: r.Updated, Labels: r.Labels}, nil
}

// Put stores img under img.Name (normalised), replacing the image stored
// under that name, if any (its Created time is kept). The target must be
// a manifest or index whose blob is in the content store.
func (s *Store) Put(ctx context.Context, img Image) error {
	_, err := s.put(ctx, img)
	return err
}

func (s *Store) put(ctx context.Context, img Image) (Image, error) {
	if err := ctx.Err(); err != nil {
		return Image{}, err
	}
	full, err := NormalizeName(img.Name)
	if err != nil {
		return Image{}, err
	}
	if err := s.checkTarget(ctx, full, img.Target); err != nil {
		return Image{}, err
	}
	now := s.now().UTC()
	rec := record{Target: img.Target, Created: now, Updated: now, Labels: maps.Clone(img.Labels)}
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketImages)
		if old := b.Get([]byte(full)); old != nil {
			prev, err := decode(full, old)
			if err != nil {
				return err
			}
			rec.Created = prev.Created
		}
		v, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		return b.Put([]byte(full), v)
	})
	if err != nil {
		return Image{}, fmt.Errorf("store image %s: %w", FamiliarName(full), err)
	}
	return Image{Name: full, Target: rec.Target, Created: rec.Created, Updated: rec.Updated, Labels: rec.Labels}, nil
}

// checkTarget validates the target descriptor and checks that its blob is
// in the content store.
func (s *Store) checkTarget(ctx context.Context, full string, t ocispec.Descriptor) error {
	if err := t.Digest.Validate(); err != nil {
		return errdefs.Invalidf("image %s: target digest %q: %v", FamiliarName(full), t.Digest, err)
	}
	if !isIndex(t.MediaType) && !isManifest(t.MediaType) {
		return errdefs.Invalidf("image %s: target media type %q is not an image manifest or index", FamiliarName(full), t.MediaType)
	}
	if t.Size <= 0 {
		return errdefs.Invalidf("image %s: target size %d", FamiliarName(full), t.Size)
	}
	ok, err := content.Exists(ctx, s.cs, t.Digest)
	if err != nil {
		return fmt.Errorf("image %s: %w", FamiliarName(full), err)
	}
	if !ok {
		return errdefs.WithClass(errdefs.ErrFailedPrecondition,
			fmt.Errorf("image %s: target %s is not in the content store", FamiliarName(full), t.Digest))
	}
	return nil
}

// Tag stores the image src names under the name dst too and returns the
// new record. src may be a name or a digest reference.
func (s *Store) Tag(ctx context.Context, src, dst string) (Image, error) {
	img, err := s.Get(ctx, src)
	if err != nil {
		return Image{}, err
	}
	img.Name = dst
	return s.put(ctx, img)
}

// Delete removes the name (in any form NormalizeName accepts). The blobs
// stay in the content store until gc finds no other image needs them.
// A missing name is an errdefs.ErrNotFound error.
func (s *Store) Delete(ctx context.Context, ref string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	full, err := NormalizeName(ref)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketImages)
		if b.Get([]byte(full)) == nil {
			return errdefs.NotFoundf("image %s: no such image", FamiliarName(full))
		}
		return b.Delete([]byte(full))
	})
}

// List returns every stored image, sorted by name.
func (s *Store) List(ctx context.Context) ([]Image, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var imgs []Image
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketImages).ForEach(func(k, v []byte) error {
			img, err := decode(string(k), v)
			if err != nil {
				return err
			}
			imgs = append(imgs, img)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	sort.Slice(imgs, func(i, j int) bool { return imgs[i].Name < imgs[j].Name })
	return imgs, nil
}
