package user

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	mobyuser "github.com/moby/sys/user"

	"github.com/kiln-build/kiln/core/errdefs"
)

// maxFileSize bounds how much of /etc/passwd or /etc/group is read; a
// larger file is an error rather than a way to exhaust the daemon's memory.
const maxFileSize = 16 << 20

// User is a resolved user.
type User struct {
	UID uint32
	GID uint32
	// AdditionalGIDs are the supplementary groups of a process: the
	// primary group, then, when the spec named no group, the user's groups
	// in /etc/group (as BuildKit gives a step; a process whose
	// supplementary list leaves its primary group out loses access that
	// group grants once it changes its gid).
	AdditionalGIDs []uint32
	// Home is the home directory from /etc/passwd, "" if the user has no
	// entry.
	Home string
}

// Resolve resolves spec ("", name, uid, name:group, uid:gid, name:gid,
// uid:group) against /etc/passwd and /etc/group of the root filesystem at
// rootfs. "" is root. A name that has no entry is an error naming it
// (errdefs.ErrNotFound); numeric ids resolve without entries.
func Resolve(rootfs, spec string) (User, error) {
	passwd, err := readFile(rootfs, "/etc/passwd")
	if err != nil {
		return User{}, err
	}
	group, err := readFile(rootfs, "/etc/group")
	if err != nil {
		return User{}, err
	}
	// GetExecUser tells a missing file apart by a nil reader.
	var pr, gr io.Reader
	if passwd != nil {
		pr = passwd
	}
	if group != nil {
		gr = group
	}
	eu, err := mobyuser.GetExecUser(spec, nil, pr, gr)
	if err != nil {
		switch {
		case errors.Is(err, mobyuser.ErrNoPasswdEntries), errors.Is(err, mobyuser.ErrNoGroupEntries):
			return User{}, errdefs.WithClass(errdefs.ErrNotFound, err)
		case errors.Is(err, mobyuser.ErrRange):
			return User{}, errdefs.Invalidf("user %q: %v", spec, err)
		}
		return User{}, fmt.Errorf("resolve user %q: %w", spec, err)
	}
	u := User{UID: uint32(eu.Uid), GID: uint32(eu.Gid), Home: eu.Home, AdditionalGIDs: []uint32{uint32(eu.Gid)}}
	for _, g := range eu.Sgids {
		if uint32(g) != u.GID {
			u.AdditionalGIDs = append(u.AdditionalGIDs, uint32(g))
		}
	}
	return u, nil
}

// readFile returns the content of name inside rootfs, or nil if it does not
// exist.
func readFile(rootfs, name string) (*bytes.Reader, error) {
	f, err := openInRoot(rootfs, name)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("open %s in %s: %w", name, rootfs, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(b) > maxFileSize {
		return nil, errdefs.Invalidf("%s is larger than %d bytes", name, maxFileSize)
	}
	return bytes.NewReader(b), nil
}
