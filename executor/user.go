package executor

import "github.com/kiln-build/kiln/executor/user"

// ResolveUser resolves a USER value ("", name, uid, name:group, uid:gid,
// name:gid, uid:group) against /etc/passwd and /etc/group of the root
// filesystem mounted at rootfsDir. Symlinks resolve inside rootfsDir. A name
// without an entry is an error naming it (errdefs.ErrNotFound); numeric ids
// need no entry. additionalGids are the user's supplementary groups, set
// only when user names no group. See executor/user for the details and for
// the home directory.
func ResolveUser(rootfsDir, spec string) (uid, gid uint32, additionalGids []uint32, err error) {
	u, err := user.Resolve(rootfsDir, spec)
	if err != nil {
		return 0, 0, nil, err
	}
	return u.UID, u.GID, u.AdditionalGIDs, nil
}
