// A Go standard-library admission webhook doing the same job as spreadguard's /mutate, for
// the load test's side-by-side baseline (benches/load.sh with GO_BASELINE=1): decode the
// AdmissionReview with encoding/json (the object as a generic map, so no field is lost),
// decide whether the pod template has zone and node spread constraints, and answer with a
// JSON patch (base64, as encoding/json encodes []byte) over TLS with net/http (HTTP/1.1 and
// HTTP/2). No logging per request.
//
//	go build -o go-webhook main.go && ./go-webhook -cert tls.crt -key tls.key -listen 127.0.0.1:18444
package main

import (
	"encoding/json"
	"flag"
	"io"
	"log"
	"net/http"
)

type review struct {
	APIVersion string    `json:"apiVersion"`
	Kind       string    `json:"kind"`
	Request    *request  `json:"request,omitempty"`
	Response   *response `json:"response,omitempty"`
}

type request struct {
	UID       string                 `json:"uid"`
	Operation string                 `json:"operation"`
	Namespace string                 `json:"namespace"`
	Resource  map[string]string      `json:"resource"`
	Object    map[string]interface{} `json:"object"`
	DryRun    bool                   `json:"dryRun"`
}

type response struct {
	UID       string `json:"uid"`
	Allowed   bool   `json:"allowed"`
	PatchType string `json:"patchType,omitempty"`
	Patch     []byte `json:"patch,omitempty"`
}

type op struct {
	Op    string      `json:"op"`
	Path  string      `json:"path"`
	Value interface{} `json:"value"`
}

func podSpec(obj map[string]interface{}) map[string]interface{} {
	spec, _ := obj["spec"].(map[string]interface{})
	tmpl, _ := spec["template"].(map[string]interface{})
	ps, _ := tmpl["spec"].(map[string]interface{})
	return ps
}

func mutate(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "content type", http.StatusUnsupportedMediaType)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 3<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var in review
	if err := json.Unmarshal(body, &in); err != nil || in.Request == nil {
		http.Error(w, "not an AdmissionReview", http.StatusBadRequest)
		return
	}
	out := response{UID: in.Request.UID, Allowed: true}
	ps := podSpec(in.Request.Object)
	if in.Request.Operation == "CREATE" && ps != nil {
		if _, ok := ps["topologySpreadConstraints"]; !ok {
			spec := in.Request.Object["spec"].(map[string]interface{})
			selector := spec["selector"]
			constraint := func(key string) map[string]interface{} {
				return map[string]interface{}{
					"maxSkew": 1, "topologyKey": key, "whenUnsatisfiable": "ScheduleAnyway",
					"labelSelector": selector, "matchLabelKeys": []string{"pod-template-hash"},
				}
			}
			ops := []op{{Op: "add", Path: "/spec/template/spec/topologySpreadConstraints",
				Value: []interface{}{constraint("topology.kubernetes.io/zone"), constraint("kubernetes.io/hostname")}}}
			patch, _ := json.Marshal(ops)
			out.Patch = patch
			out.PatchType = "JSONPatch"
		}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(review{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview", Response: &out})
}

func main() {
	cert := flag.String("cert", "tls.crt", "certificate")
	key := flag.String("key", "tls.key", "key")
	listen := flag.String("listen", "127.0.0.1:18444", "address")
	flag.Parse()
	http.HandleFunc("/mutate", mutate)
	log.Fatal(http.ListenAndServeTLS(*listen, *cert, *key, nil))
}
