// DocumentIntake.ProcessDocument through the classes wsimport generated
// (with -extension, into the package soapgate.clients.intake) from the
// facade's ?wsdl, written against them as an application would be: the
// request's DocumentLines and DocumentLine beans filled from the values of
// a sample request, the port method called with its Holders (DocumentId is
// in the request and the response, so it is in/out; the response's Lines
// is `lines0` because the request has a Lines of another type), and the
// answer read through the typed Holders. One JSON line per port with the
// values and their Java types.
//
// Usage: java JaxwsIntake WSDL_URL SAMPLE PORT...   (PORT: the WSDL port name)

import java.io.File;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.net.URL;
import java.util.ArrayList;
import java.util.List;
import javax.xml.namespace.QName;
import javax.xml.parsers.DocumentBuilderFactory;
import javax.xml.ws.BindingProvider;
import javax.xml.ws.Holder;
import org.w3c.dom.Element;
import org.w3c.dom.Node;
import soapgate.clients.intake.DocumentIntake;
import soapgate.clients.intake.DocumentIntakePortType;
import soapgate.clients.intake.DocumentKind;
import soapgate.clients.intake.DocumentLine;
import soapgate.clients.intake.DocumentLines;
import soapgate.clients.intake.InvoiceFields;
import soapgate.clients.intake.LineCategories;
import soapgate.clients.intake.LineCategory;

public final class JaxwsIntake {
    static final String NS = "urn:example:document-intake";

    public static void main(String[] args) throws Exception {
        if (args.length < 3) {
            System.err.println("usage: JaxwsIntake WSDL_URL SAMPLE PORT...");
            System.exit(2);
        }
        java.util.logging.Logger.getLogger("javax.xml.soap").setLevel(java.util.logging.Level.SEVERE);
        Element request = request(new File(args[1]));
        DocumentIntake service = new DocumentIntake(new URL(args[0]));
        for (int p = 2; p < args.length; p++) {
            DocumentIntakePortType port = service.getPort(new QName(NS, args[p]), DocumentIntakePortType.class);
            ((BindingProvider) port).getRequestContext().put("com.sun.xml.ws.request.timeout", 60_000);

            DocumentLines lines = new DocumentLines();
            for (Element l : children(first(request, "Lines"), "Line")) {
                DocumentLine line = new DocumentLine();
                line.setNumber(new BigInteger(text(first(l, "Number"))));
                line.setDescription(text(first(l, "Description")));
                Element amount = first(l, "Amount");
                if (amount != null) {
                    line.setAmount(new BigDecimal(text(amount)));
                }
                lines.getLine().add(line);
            }
            Holder<String> documentId = new Holder<>(text(first(request, "DocumentId")));
            Holder<DocumentKind> kind = new Holder<>();
            Holder<InvoiceFields> invoice = new Holder<>();
            Holder<LineCategories> categories = new Holder<>();
            port.processDocument(documentId, text(first(request, "Text")), lines, kind, invoice, categories);

            StringBuilder json = new StringBuilder("{");
            json.append(str("port")).append(':').append(str(args[p]));
            json.append(',').append(str("DocumentId")).append(':').append(typed(documentId.value));
            json.append(',').append(str("Kind")).append(':').append(typed(kind.value));
            json.append(',').append(str("Invoice")).append(':');
            InvoiceFields inv = invoice.value;
            if (inv == null) {
                json.append("null");
            } else {
                json.append('{')
                        .append(str("InvoiceNumber")).append(':').append(typed(inv.getInvoiceNumber())).append(',')
                        .append(str("Supplier")).append(':').append(typed(inv.getSupplier())).append(',')
                        .append(str("IssueDate")).append(':').append(typed(inv.getIssueDate())).append(',')
                        .append(str("Total")).append(':').append(typed(inv.getTotal())).append(',')
                        .append(str("Currency")).append(':').append(typed(inv.getCurrency()))
                        .append('}');
            }
            List<String> out = new ArrayList<>();
            if (categories.value != null) {
                for (LineCategory c : categories.value.getLine()) {
                    out.add("{" + str("Number") + ":" + typed(c.getNumber()) + ","
                            + str("Category") + ":" + typed(c.getCategory()) + "}");
                }
            }
            json.append(',').append(str("Lines")).append(":[").append(String.join(",", out)).append("]}");
            System.out.println(json);
            System.out.flush();
        }
    }

    // A value and the simple name of its Java class; an enum by its XML
    // value (value()), everything else by toString().
    static String typed(Object v) throws Exception {
        if (v == null) {
            return "null";
        }
        Object shown = v instanceof Enum<?> ? v.getClass().getMethod("value").invoke(v) : v;
        return "{" + str("value") + ":" + str(String.valueOf(shown)) + "," + str("type") + ":"
                + str(v.getClass().getSimpleName()) + "}";
    }

    static String str(String s) {
        StringBuilder sb = new StringBuilder("\"");
        for (char ch : s.toCharArray()) {
            switch (ch) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                case '\n' -> sb.append("\\n");
                case '\r' -> sb.append("\\r");
                case '\t' -> sb.append("\\t");
                default -> {
                    if (ch < 0x20) {
                        sb.append(String.format("\\u%04x", (int) ch));
                    } else {
                        sb.append(ch);
                    }
                }
            }
        }
        return sb.append('"').toString();
    }

    // The ProcessDocument element of the sample envelope.
    static Element request(File sample) throws Exception {
        DocumentBuilderFactory f = DocumentBuilderFactory.newInstance();
        f.setNamespaceAware(true);
        f.setFeature("http://apache.org/xml/features/disallow-doctype-decl", true);
        Node found = f.newDocumentBuilder().parse(sample).getElementsByTagNameNS(NS, "ProcessDocument").item(0);
        if (found == null) {
            throw new IllegalStateException(sample + ": no ProcessDocument element");
        }
        return (Element) found;
    }

    static List<Element> children(Element parent, String local) {
        List<Element> out = new ArrayList<>();
        if (parent == null) {
            return out;
        }
        for (Node n = parent.getFirstChild(); n != null; n = n.getNextSibling()) {
            if (n instanceof Element e && NS.equals(e.getNamespaceURI()) && local.equals(e.getLocalName())) {
                out.add(e);
            }
        }
        return out;
    }

    static Element first(Element parent, String local) {
        List<Element> all = children(parent, local);
        return all.isEmpty() ? null : all.get(0);
    }

    static String text(Element e) {
        return e == null ? null : e.getTextContent();
    }
}
