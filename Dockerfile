# The satellite's image: one static skypipe binary and nothing else. This is
# the manual path (`fly deploy`, see fly.toml and the README); `skypipe
# setup fly` pushes the same layout (provision/fly/image.go) from its own
# binary, and a test checks the two agree.
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
