package convert

import (
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

func itoa(i int) string { return strconv.Itoa(i) }

// normalizeRef returns an image reference in Docker's full form:
// "busybox" is "docker.io/library/busybox:latest"; a digest reference keeps
// the tag it was written with ("busybox:1.36@sha256:...").
func normalizeRef(s string) (string, error) {
	ref, err := name.ParseReference(s)
	if err != nil {
		return "", err
	}
	repo := ref.Context().Name()
	if rest, ok := strings.CutPrefix(repo, name.DefaultRegistry+"/"); ok {
		repo = "docker.io/" + rest
	}
	switch r := ref.(type) {
	case name.Tag:
		return repo + ":" + r.TagStr(), nil
	case name.Digest:
		base, _, _ := strings.Cut(s, "@")
		tag := ""
		if i := strings.LastIndexByte(base, ':'); i > strings.LastIndexByte(base, '/') {
			tag = ":" + base[i+1:]
		}
		return repo + tag + "@" + r.DigestStr(), nil
	}
	return ref.Name(), nil
}

// suggest returns the candidate closest to word by edit distance, if one
// is within half the word's length (and at most 3 edits).
func suggest(word string, candidates []string) (string, bool) {
	best, bestD := "", min(len(word)/2, 3)+1
	for _, c := range candidates {
		if d := editDistance(word, strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	return best, best != "" && bestD > 0
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
