package testutil

import (
	"archive/tar"
	"bytes"
)

// GatewayFixture is the Dockerfile the gateway tests build twice, with
// Kiln's built-in frontend and with BuildKit's (named on a `# syntax=`
// line), and compare: stages, args, env, copies with owners and modes,
// heredocs, cache mounts, links, archives, .dockerignore and the metadata
// instructions. BASE stands for the base image; GatewayFixtureFiles is
// its context.
const GatewayFixture = `FROM BASE AS build
ARG GREETING=hello
ENV APP_HOME=/app
WORKDIR $APP_HOME
COPY a.txt dir/ ./
RUN --mount=type=cache,target=/cache echo "$GREETING" > /cache/g && cp /cache/g greeting
RUN <<EOF
mkdir -p /out
echo heredoc > /out/h
ln -s /out/h /out/link
EOF

FROM BASE
LABEL org.example.name="gateway test" org.example.v=1
COPY --from=build --chown=2:3 /out/ /out/
COPY --from=build /app/greeting /greeting
COPY --chmod=0750 a.txt /bin-a
COPY --link dir/ /linked/
COPY . /ctx/
ADD arch.tar /unpacked/
USER 1000:1000
WORKDIR /home/app
EXPOSE 8080/tcp
VOLUME /data
ENV MODE=production
HEALTHCHECK --interval=30s CMD ["true"]
SHELL ["/bin/sh", "-ec"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/bin/sh"]
CMD ["-c", "cat /greeting"]
`

// GatewayFixtureFiles is GatewayFixture's context, .dockerignore
// included (it leaves dir/ignored.txt out).
func GatewayFixtureFiles() map[string][]byte {
	return map[string][]byte{
		"a.txt":           []byte("a\n"),
		"dir/b.txt":       []byte("b\n"),
		"dir/ignored.txt": []byte("secret\n"),
		".dockerignore":   []byte("dir/ignored.txt\n"),
		"arch.tar":        TarArchive("inner.txt", "inside\n"),
	}
}

// TarArchive returns a tar archive holding one file.
func TarArchive(name, data string) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	// Writes to a bytes.Buffer cannot fail.
	_ = tw.WriteHeader(&tar.Header{Name: name, Mode: 0o640, Size: int64(len(data)), Typeflag: tar.TypeReg})
	_, _ = tw.Write([]byte(data))
	_ = tw.Close()
	return b.Bytes()
}
