# syntax=docker/dockerfile:1

# Build a static binary: no cgo, so it runs on an image without libc.
FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so the download layer is cached until go.mod/go.sum change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/coinop ./cmd/coinop

# distroless/static has CA certificates and tzdata (for the store receipt
# APIs and time zones) and nothing else: no shell to exploit.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/coinop /usr/local/bin/coinop
USER nonroot:nonroot
EXPOSE 8080
ENTRYPOINT ["coinop"]
CMD ["serve"]
