#pragma once
// Certificates made at test time with OpenSSL's API (P-256 keys, SHA-256
// signatures, valid from an hour ago for a day): a CA, and leaf
// certificates it signs for DNS names such as "rank0.loco". Also writes PEM
// text to files in a fresh temporary directory, for the file options.
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace test_certificates {

struct pem_pair {
  std::string cert;  // PEM certificate
  std::string key;   // PEM private key (unencrypted)
};

namespace detail {

inline void check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("test certificates: ") + what + " failed");
}

struct key_deleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct cert_deleter {
  void operator()(X509* c) const { X509_free(c); }
};
using key_ptr = std::unique_ptr<EVP_PKEY, key_deleter>;
using cert_ptr = std::unique_ptr<X509, cert_deleter>;

inline key_ptr new_key() {
  key_ptr k(EVP_EC_gen("P-256"));
  check(k != nullptr, "EVP_EC_gen");
  return k;
}

inline void add_extension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  check(ext != nullptr, "X509V3_EXT_conf_nid");
  check(X509_add_ext(cert, ext, -1) == 1, "X509_add_ext");
  X509_EXTENSION_free(ext);
}

// A certificate for `key` named `cn`; self-signed when issuer is null.
inline cert_ptr new_cert(EVP_PKEY* key, const std::string& cn, X509* issuer, EVP_PKEY* issuer_key,
                         long serial, const std::vector<std::string>& dns) {
  cert_ptr c(X509_new());
  check(c != nullptr, "X509_new");
  X509* x = c.get();
  check(X509_set_version(x, 2) == 1, "X509_set_version");
  check(ASN1_INTEGER_set(X509_get_serialNumber(x), serial) == 1, "serial");
  check(X509_gmtime_adj(X509_getm_notBefore(x), -3600) != nullptr, "notBefore");
  check(X509_gmtime_adj(X509_getm_notAfter(x), 24 * 3600) != nullptr, "notAfter");
  check(X509_set_pubkey(x, key) == 1, "X509_set_pubkey");
  X509_NAME* name = X509_get_subject_name(x);
  check(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                                   0) == 1,
        "subject CN");
  X509* signer = issuer != nullptr ? issuer : x;
  check(X509_set_issuer_name(x, X509_get_subject_name(signer)) == 1, "issuer name");
  add_extension(x, signer, NID_subject_key_identifier, "hash");
  if (issuer == nullptr) {
    add_extension(x, signer, NID_basic_constraints, "critical,CA:TRUE");
    add_extension(x, signer, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    add_extension(x, signer, NID_basic_constraints, "critical,CA:FALSE");
    add_extension(x, signer, NID_key_usage, "critical,digitalSignature");
    add_extension(x, signer, NID_ext_key_usage, "serverAuth,clientAuth");
    add_extension(x, signer, NID_authority_key_identifier, "keyid");
    if (!dns.empty()) {
      std::string san;
      for (const auto& d : dns) san += (san.empty() ? "DNS:" : ",DNS:") + d;
      add_extension(x, signer, NID_subject_alt_name, san.c_str());
    }
  }
  check(X509_sign(x, issuer_key != nullptr ? issuer_key : key, EVP_sha256()) > 0, "X509_sign");
  return c;
}

template <class Write>
std::string to_pem(Write write) {
  BIO* bio = BIO_new(BIO_s_mem());
  check(bio != nullptr, "BIO_new");
  const bool ok = write(bio);
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio, &data);
  std::string text = ok && len > 0 ? std::string(data, static_cast<std::size_t>(len)) : "";
  BIO_free(bio);
  check(!text.empty(), "PEM_write");
  return text;
}

}  // namespace detail

class authority {
 public:
  explicit authority(const std::string& cn) : key_(detail::new_key()) {
    cert_ = detail::new_cert(key_.get(), cn, nullptr, nullptr, 1, {});
  }
  // The CA certificate (what ranks trust).
  std::string cert_pem() const {
    return detail::to_pem([&](BIO* b) { return PEM_write_bio_X509(b, cert_.get()) == 1; });
  }
  // A leaf certificate and key for `cn`, valid for the given DNS names.
  pem_pair issue(const std::string& cn, const std::vector<std::string>& dns = {}) {
    auto key = detail::new_key();
    auto cert = detail::new_cert(key.get(), cn, cert_.get(), key_.get(), ++serial_, dns);
    pem_pair out;
    out.cert = detail::to_pem([&](BIO* b) { return PEM_write_bio_X509(b, cert.get()) == 1; });
    out.key = detail::to_pem([&](BIO* b) {
      return PEM_write_bio_PrivateKey(b, key.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1;
    });
    return out;
  }

 private:
  detail::key_ptr key_;
  detail::cert_ptr cert_;
  long serial_ = 1;
};

// A fresh directory under the system temp dir, removed with its files.
class temp_dir {
 public:
  temp_dir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "loco-tls-XXXXXX").string();
    detail::check(::mkdtemp(pattern.data()) != nullptr, "mkdtemp");
    path_ = pattern;
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  ~temp_dir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  // Writes text to name inside the directory; returns the full path.
  std::string write(const std::string& name, const std::string& text) const {
    const auto p = path_ / name;
    std::ofstream(p) << text;
    return p.string();
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace test_certificates
