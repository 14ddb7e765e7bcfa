# The satellite's image, built from this repository: one static skypipe
# binary and nothing else. This is the manual path (`fly deploy`, see
# fly.toml and the README; `docker build --build-arg VERSION=1.2.3 .`). A
# release publishes the same layout made from the release's own binary
# (cmd/release-image, ghcr.io/skypipe/skypipe:VERSION), which `skypipe setup
# fly` runs, or pushes from its own binary (provision/fly/image.go); a test
# checks that the three agree.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG TARGETARCH=amd64
ARG VERSION=dev
RUN CGO_ENABLED=0 GOOS=linux GOARCH=$TARGETARCH go build -trimpath \
    -ldflags "-X main.version=$VERSION" -o /skypipe ./cmd/skypipe

FROM scratch
COPY --from=build /skypipe /skypipe
ENTRYPOINT ["/skypipe"]
CMD ["serve", "--listen", "0.0.0.0:4222", "--store", "/data/store", "--http", "0.0.0.0:8080", "--http-proxied"]
