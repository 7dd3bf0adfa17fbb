package disk

import "golang.org/x/sys/unix"

// Space returns the size of the file system dir is on (0 when it cannot be
// read) and a function reading its free space, for gc policies in
// percentages and for MinFreeBytes.
func Space(dir string) (int64, func() (int64, error)) {
	free := func() (int64, error) {
		var st unix.Statfs_t
		if err := unix.Statfs(dir, &st); err != nil {
			return 0, err
		}
		return int64(st.Bavail) * int64(st.Bsize), nil
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, free
	}
	return int64(st.Blocks) * int64(st.Bsize), free
}
