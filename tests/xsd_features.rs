//! Feature probes: small schemas written for one construct each, with documents on both
//! sides of every rule. Each expected verdict is asserted for the engine, and — when
//! `xmllint` is installed — for libxml2 too, so the table itself is checked against the
//! reference.

mod support;

use std::path::PathBuf;

use siirto_xsd::Limits;
use siirto_xsd::schema::{Schema, ValidationFailure};

struct Probe {
    name: &'static str,
    schema: &'static str,
    cases: &'static [(bool, &'static str)],
}

const XS: &str = r###"xmlns:xs="http://www.w3.org/2001/XMLSchema""###;

fn schema_text(body: &str) -> String {
    if body.trim_start().starts_with("<xs:schema") {
        body.to_owned()
    } else {
        format!("<xs:schema {XS}>{body}</xs:schema>")
    }
}

const PROBES: &[Probe] = &[
    Probe {
        name: "sequence with occurrence ranges",
        schema: r###"<xs:element name="r"><xs:complexType><xs:sequence>
            <xs:element name="a" minOccurs="2" maxOccurs="3"/>
            <xs:element name="b" minOccurs="0"/>
            <xs:element name="c" maxOccurs="unbounded"/>
        </xs:sequence></xs:complexType></xs:element>"###,
        cases: &[
            (true, "<r><a/><a/><c/></r>"),
            (true, "<r><a/><a/><a/><b/><c/><c/><c/></r>"),
            (false, "<r><a/><c/></r>"),
            (false, "<r><a/><a/><a/><a/><c/></r>"),
            (false, "<r><a/><a/><b/></r>"),
            (false, "<r><a/><a/><c/><b/></r>"),
            (false, "<r><a/><a/><c/>x</r>"),
            (true, "<r>\n  <a/>\n  <a/><!-- c --><?pi?>\n  <c/>\n</r>"),
        ],
    },
    Probe {
        name: "choice and nested groups",
        schema: r###"<xs:element name="r"><xs:complexType><xs:choice maxOccurs="2">
            <xs:element name="a"/>
            <xs:sequence><xs:element name="b"/><xs:element name="c" minOccurs="0"/></xs:sequence>
        </xs:choice></xs:complexType></xs:element>"###,
        cases: &[
            (true, "<r><a/></r>"),
            (true, "<r><b/><c/><a/></r>"),
            (true, "<r><b/><b/></r>"),
            (false, "<r/>"),
            (false, "<r><a/><a/><a/></r>"),
            (false, "<r><c/></r>"),
        ],
    },
    Probe {
        name: "xs:all",
        schema: r###"<xs:element name="r"><xs:complexType><xs:all>
            <xs:element name="a"/><xs:element name="b" minOccurs="0"/><xs:element name="c"/>
        </xs:all></xs:complexType></xs:element>"###,
        cases: &[
            (true, "<r><c/><a/></r>"),
            (true, "<r><b/><c/><a/></r>"),
            (false, "<r><a/></r>"),
            (false, "<r><a/><c/><a/></r>"),
            (false, "<r/>"),
        ],
    },
    Probe {
        name: "optional xs:all",
        schema: r###"<xs:element name="r"><xs:complexType><xs:all minOccurs="0">
            <xs:element name="a"/><xs:element name="b"/>
        </xs:all></xs:complexType></xs:element>"###,
        cases: &[
            (true, "<r/>"),
            (true, "<r><b/><a/></r>"),
            (false, "<r><a/></r>"),
        ],
    },
    Probe {
        name: "named groups and attribute groups",
        schema: r###"<xs:group name="g"><xs:sequence><xs:element name="a"/><xs:element name="b" minOccurs="0"/></xs:sequence></xs:group>
            <xs:attributeGroup name="ag"><xs:attribute name="x" use="required"/><xs:attribute name="y" type="xs:int"/></xs:attributeGroup>
            <xs:element name="r"><xs:complexType><xs:sequence><xs:group ref="g" maxOccurs="2"/></xs:sequence>
            <xs:attributeGroup ref="ag"/></xs:complexType></xs:element>"###,
        cases: &[
            (true, r###"<r x="1"><a/><b/><a/></r>"###),
            (false, r###"<r><a/></r>"###),
            (false, r###"<r x="1" y="z"><a/></r>"###),
            (false, r###"<r x="1" z="1"><a/></r>"###),
            (false, r###"<r x="1"><b/></r>"###),
        ],
    },
    Probe {
        name: "complexContent extension and restriction",
        schema: r###"<xs:complexType name="Base"><xs:sequence><xs:element name="a"/><xs:element name="b" minOccurs="0"/></xs:sequence><xs:attribute name="id"/></xs:complexType>
            <xs:complexType name="Ext"><xs:complexContent><xs:extension base="Base"><xs:sequence><xs:element name="c"/></xs:sequence><xs:attribute name="e" use="required"/></xs:extension></xs:complexContent></xs:complexType>
            <xs:complexType name="Res"><xs:complexContent><xs:restriction base="Base"><xs:sequence><xs:element name="a"/></xs:sequence><xs:attribute name="id" use="prohibited"/></xs:restriction></xs:complexContent></xs:complexType>
            <xs:element name="r"><xs:complexType><xs:sequence><xs:element name="x" type="Ext"/><xs:element name="y" type="Res" minOccurs="0"/></xs:sequence></xs:complexType></xs:element>"###,
        cases: &[
            (true, r###"<r><x e="1" id="2"><a/><b/><c/></x></r>"###),
            (true, r###"<r><x e="1"><a/><c/></x><y><a/></y></r>"###),
            (false, r###"<r><x><a/><c/></x></r>"###),
            (false, r###"<r><x e="1"><a/></x></r>"###),
            (false, r###"<r><x e="1"><c/><a/></x></r>"###),
            (
                false,
                r###"<r><x e="1"><a/><c/></x><y id="1"><a/></y></r>"###,
            ),
            (false, r###"<r><x e="1"><a/><c/></x><y><a/><b/></y></r>"###),
        ],
    },
    Probe {
        name: "simpleContent extension and restriction",
        schema: r###"<xs:complexType name="Amount"><xs:simpleContent><xs:extension base="xs:decimal"><xs:attribute name="unit" use="required"/></xs:extension></xs:simpleContent></xs:complexType>
            <xs:complexType name="Small"><xs:simpleContent><xs:restriction base="Amount"><xs:maxInclusive value="10"/><xs:attribute name="unit" use="required" fixed="op"/></xs:restriction></xs:simpleContent></xs:complexType>
            <xs:element name="r"><xs:complexType><xs:sequence><xs:element name="a" type="Amount"/><xs:element name="s" type="Small" minOccurs="0"/></xs:sequence></xs:complexType></xs:element>"###,
        cases: &[
            (
                true,
                r###"<r><a unit="op">5.5</a><s unit="op">10</s></r>"###,
            ),
            (false, r###"<r><a>5</a></r>"###),
            (false, r###"<r><a unit="op">five</a></r>"###),
            (false, r###"<r><a unit="op">5</a><s unit="op">11</s></r>"###),
            (false, r###"<r><a unit="op">5</a><s unit="ov">1</s></r>"###),
            (false, r###"<r><a unit="op"><b/></a></r>"###),
        ],
    },
    Probe {
        name: "attributes: use, default, fixed, form",
        schema: r###"<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:t="urn:t" targetNamespace="urn:t" elementFormDefault="qualified">
            <xs:element name="r"><xs:complexType>
            <xs:attribute name="req" type="xs:boolean" use="required"/>
            <xs:attribute name="def" type="xs:int" default="3"/>
            <xs:attribute name="fix" type="xs:decimal" fixed="1.5"/>
            <xs:attribute name="q" form="qualified"/>
            </xs:complexType></xs:element></xs:schema>"###,
        cases: &[
            (true, r###"<r xmlns="urn:t" req="true"/>"###),
            (
                true,
                r###"<r xmlns="urn:t" xmlns:t="urn:t" req="0" def="7" fix="1.50" t:q="x"/>"###,
            ),
            (false, r###"<r xmlns="urn:t"/>"###),
            (false, r###"<r xmlns="urn:t" req="yes"/>"###),
            (false, r###"<r xmlns="urn:t" req="1" fix="2"/>"###),
            (false, r###"<r xmlns="urn:t" req="1" q="x"/>"###),
            (false, r###"<r req="1"/>"###),
        ],
    },
    Probe {
        name: "wildcards: namespace constraints and processContents",
        schema: r###"<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:t="urn:t" targetNamespace="urn:t" elementFormDefault="qualified">
            <xs:element name="known" type="xs:int"/>
            <xs:element name="r"><xs:complexType><xs:sequence>
              <xs:element name="strict"><xs:complexType><xs:sequence><xs:any namespace="##targetNamespace" processContents="strict" maxOccurs="unbounded"/></xs:sequence></xs:complexType></xs:element>
              <xs:element name="lax"><xs:complexType><xs:sequence><xs:any namespace="##any" processContents="lax" minOccurs="0" maxOccurs="unbounded"/></xs:sequence><xs:anyAttribute processContents="lax"/></xs:complexType></xs:element>
              <xs:element name="skip"><xs:complexType><xs:sequence><xs:any namespace="##other" processContents="skip" minOccurs="0" maxOccurs="unbounded"/></xs:sequence><xs:anyAttribute namespace="##other" processContents="skip"/></xs:complexType></xs:element>
              <xs:element name="local" minOccurs="0"><xs:complexType><xs:sequence><xs:any namespace="##local" processContents="skip"/></xs:sequence></xs:complexType></xs:element>
            </xs:sequence></xs:complexType></xs:element></xs:schema>"###,
        cases: &[
            (
                true,
                r###"<r xmlns="urn:t"><strict><known>1</known></strict><lax/><skip/></r>"###,
            ),
            (
                false,
                r###"<r xmlns="urn:t"><strict><known>x</known></strict><lax/><skip/></r>"###,
            ),
            (
                false,
                r###"<r xmlns="urn:t"><strict><unknown/></strict><lax/><skip/></r>"###,
            ),
            (
                true,
                r###"<r xmlns="urn:t"><strict><known>1</known></strict><lax><unknown a="1"><deep/></unknown><o:x xmlns:o="urn:o"/></lax><skip/></r>"###,
            ),
            (
                false,
                r###"<r xmlns="urn:t"><strict><known>1</known></strict><lax><x><known>bad</known></x></lax><skip/></r>"###,
            ),
            (
                true,
                r###"<r xmlns="urn:t"><strict><known>1</known></strict><lax/><skip xmlns:o="urn:o" o:a="1"><o:x><anything/></o:x></skip></r>"###,
            ),
            (
                false,
                r###"<r xmlns="urn:t"><strict><known>1</known></strict><lax/><skip><known>1</known></skip></r>"###,
            ),
            (
                false,
                r###"<r xmlns="urn:t"><strict><known>1</known></strict><lax/><skip><nons xmlns=""/></skip></r>"###,
            ),
            (
                false,
                r###"<r xmlns="urn:t"><strict><known>1</known></strict><lax/><skip a="1"/></r>"###,
            ),
            (
                true,
                r###"<r xmlns="urn:t"><strict><known>1</known></strict><lax/><skip/><local><x xmlns=""/></local></r>"###,
            ),
            (
                false,
                r###"<r xmlns="urn:t"><strict><known>1</known></strict><lax/><skip/><local><x/></local></r>"###,
            ),
        ],
    },
    Probe {
        name: "nillable and xsi:nil",
        schema: r###"<xs:element name="r"><xs:complexType><xs:sequence>
            <xs:element name="n" type="xs:date" nillable="true" maxOccurs="unbounded"/>
            <xs:element name="m" type="xs:date" minOccurs="0"/>
            </xs:sequence></xs:complexType></xs:element>"###,
        cases: &[
            (
                true,
                r###"<r xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><n xsi:nil="true"/><n>2020-01-01</n></r>"###,
            ),
            (
                false,
                r###"<r xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><n xsi:nil="true">2020-01-01</n></r>"###,
            ),
            (
                false,
                r###"<r xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><n/></r>"###,
            ),
            (
                false,
                r###"<r xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><n>2020-01-01</n><m xsi:nil="true"/></r>"###,
            ),
            (
                false,
                r###"<r xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><n xsi:nil="maybe"/></r>"###,
            ),
            // §3.3.4 clause 3.1: no xsi:nil at all on a non-nillable element, even "false".
            (
                false,
                r###"<r xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><n>2020-01-01</n><m xsi:nil="false">2020-01-01</m></r>"###,
            ),
            (
                false,
                r###"<r xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:nil="false"><n>2020-01-01</n></r>"###,
            ),
            (
                true,
                r###"<r xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><n xsi:nil="false">2020-01-01</n><n xsi:nil="0">2020-01-01</n></r>"###,
            ),
        ],
    },
    Probe {
        name: "nil, comments and whitespace",
        schema: r###"<xs:element name="r"><xs:complexType><xs:sequence>
            <xs:element name="d" type="xs:date" nillable="true" minOccurs="0"/>
            <xs:element name="c" nillable="true" minOccurs="0"><xs:complexType><xs:sequence><xs:element name="x"/></xs:sequence></xs:complexType></xs:element>
            <xs:element name="s" type="xs:string" minOccurs="0"/>
            <xs:element name="e" minOccurs="0"><xs:complexType/></xs:element>
            </xs:sequence></xs:complexType></xs:element>"###,
        cases: &[
            (
                false,
                r###"<r xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><d xsi:nil="true"> </d></r>"###,
            ),
            (
                true,
                r###"<r xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><d xsi:nil="true"><!-- c --></d></r>"###,
            ),
            (
                false,
                r###"<r xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><c xsi:nil="true"> </c></r>"###,
            ),
            (
                true,
                r###"<r xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><c xsi:nil="true"/></r>"###,
            ),
            (
                true,
                r###"<r xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><c xsi:nil="false"><x/></c></r>"###,
            ),
            (
                false,
                r###"<r xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><c xsi:nil="true"><x/></c></r>"###,
            ),
            (
                false,
                r###"<r xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><s xsi:nil="true"/></r>"###,
            ),
            (true, "<r><e><!-- x --><?pi x?></e></r>"),
            (
                false,
                r###"<r xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:foo="1"/>"###,
            ),
            (
                true,
                r###"<r xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:noNamespaceSchemaLocation="x.xsd" xsi:schemaLocation="urn:x x.xsd"/>"###,
            ),
            (
                true,
                r###"<r xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><d xsi:nil=" true "/></r>"###,
            ),
            (true, "<r><s>a<!-- c -->b</s></r>"),
        ],
    },
    Probe {
        name: "xsi:type",
        schema: r###"<xs:complexType name="B"><xs:sequence><xs:element name="a"/></xs:sequence></xs:complexType>
            <xs:complexType name="D"><xs:complexContent><xs:extension base="B"><xs:sequence><xs:element name="b"/></xs:sequence></xs:extension></xs:complexContent></xs:complexType>
            <xs:complexType name="Other"><xs:sequence><xs:element name="a"/></xs:sequence></xs:complexType>
            <xs:complexType name="Abs" abstract="true"><xs:sequence><xs:element name="a"/></xs:sequence></xs:complexType>
            <xs:element name="r"><xs:complexType><xs:sequence><xs:element name="e" type="B" maxOccurs="unbounded"/><xs:element name="f" type="Abs" minOccurs="0"/></xs:sequence></xs:complexType></xs:element>"###,
        cases: &[
            (
                true,
                r###"<r xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><e><a/></e><e xsi:type="D"><a/><b/></e></r>"###,
            ),
            (
                false,
                r###"<r xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><e xsi:type="D"><a/></e></r>"###,
            ),
            (
                false,
                r###"<r xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><e xsi:type="Other"><a/></e></r>"###,
            ),
            (
                false,
                r###"<r xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><e xsi:type="Nope"><a/></e></r>"###,
            ),
            (false, r###"<r><e><a/></e><f><a/></f></r>"###),
        ],
    },
    Probe {
        name: "empty, element-only and mixed content",
        schema: r###"<xs:element name="r"><xs:complexType><xs:sequence>
            <xs:element name="empty" minOccurs="0"><xs:complexType><xs:attribute name="a"/></xs:complexType></xs:element>
            <xs:element name="mixed" minOccurs="0"><xs:complexType mixed="true"><xs:sequence><xs:element name="b" minOccurs="0"/></xs:sequence></xs:complexType></xs:element>
            <xs:element name="any" minOccurs="0"/>
            </xs:sequence></xs:complexType></xs:element>"###,
        cases: &[
            (
                true,
                r###"<r><empty a="1"/><mixed>text <b/> more</mixed><any>x<y z="1"/></any></r>"###,
            ),
            (false, r###"<r><empty> </empty></r>"###),
            (false, r###"<r><empty><x/></empty></r>"###),
            (true, r###"<r><empty><!-- only a comment --></empty></r>"###),
            (false, r###"<r><mixed><c/></mixed></r>"###),
            (false, r###"<r>text</r>"###),
        ],
    },
    Probe {
        name: "string facets, patterns, enumerations, whiteSpace",
        schema: r###"<xs:simpleType name="Code"><xs:restriction base="xs:string"><xs:maxLength value="5"/><xs:enumeration value="01"/><xs:enumeration value="02"/><xs:enumeration value="ABCDEF"/></xs:restriction></xs:simpleType>
            <xs:simpleType name="Tok"><xs:restriction base="xs:token"><xs:pattern value="[A-Z]{2}-\d+"/><xs:minLength value="4"/></xs:restriction></xs:simpleType>
            <xs:simpleType name="Two"><xs:restriction base="xs:string"><xs:pattern value="a.*"/><xs:pattern value="b.*"/></xs:restriction></xs:simpleType>
            <xs:simpleType name="Both"><xs:restriction base="Two"><xs:pattern value=".*z"/></xs:restriction></xs:simpleType>
            <xs:simpleType name="Len"><xs:restriction base="xs:string"><xs:length value="3"/></xs:restriction></xs:simpleType>
            <xs:element name="r"><xs:complexType><xs:sequence>
              <xs:element name="c" type="Code" minOccurs="0"/><xs:element name="t" type="Tok" minOccurs="0"/>
              <xs:element name="b" type="Both" minOccurs="0"/><xs:element name="l" type="Len" minOccurs="0"/>
            </xs:sequence></xs:complexType></xs:element>"###,
        cases: &[
            (true, "<r><c>01</c><t>  FI-123 </t><b>abz</b><l>äöå</l></r>"),
            (false, "<r><c>1</c></r>"),
            (false, "<r><c> 01</c></r>"),
            (false, "<r><c>ABCDEF</c></r>"),
            (false, "<r><t>fi-123</t></r>"),
            (false, "<r><b>cz</b></r>"),
            (false, "<r><b>ab</b></r>"),
            (false, "<r><l>abcd</l></r>"),
            (true, "<r><b>bz</b></r>"),
        ],
    },
    Probe {
        name: "numeric facets",
        schema: r###"<xs:simpleType name="Share"><xs:restriction base="xs:decimal"><xs:totalDigits value="4"/><xs:fractionDigits value="2"/><xs:minExclusive value="0"/><xs:maxInclusive value="1.0"/></xs:restriction></xs:simpleType>
            <xs:simpleType name="Small"><xs:restriction base="xs:integer"><xs:minInclusive value="-5"/><xs:maxExclusive value="5"/><xs:enumeration value="-5"/><xs:enumeration value="1"/><xs:enumeration value="4"/></xs:restriction></xs:simpleType>
            <xs:element name="r"><xs:complexType><xs:sequence>
              <xs:element name="s" type="Share" minOccurs="0" maxOccurs="unbounded"/><xs:element name="i" type="Small" minOccurs="0" maxOccurs="unbounded"/>
              <xs:element name="b" type="xs:byte" minOccurs="0"/><xs:element name="u" type="xs:unsignedShort" minOccurs="0"/>
              <xs:element name="d" type="xs:double" minOccurs="0" maxOccurs="unbounded"/>
            </xs:sequence></xs:complexType></xs:element>"###,
        cases: &[
            (
                true,
                "<r><s>0.25</s><s>1</s><s>1.00</s><i>+01</i><i>-5</i><b>-128</b><u>65535</u><d>1e3</d><d>INF</d><d>NaN</d></r>",
            ),
            (false, "<r><s>0</s></r>"),
            (false, "<r><s>1.01</s></r>"),
            (false, "<r><s>0.125</s></r>"),
            (false, "<r><i>2</i></r>"),
            (false, "<r><i>1.0</i></r>"),
            (false, "<r><b>128</b></r>"),
            (false, "<r><u>-1</u></r>"),
            (false, "<r><d>1,5</d></r>"),
        ],
    },
    Probe {
        name: "date and time facets",
        schema: r###"<xs:simpleType name="Pvm"><xs:restriction base="xs:date"><xs:minInclusive value="1900-01-01"/></xs:restriction></xs:simpleType>
            <xs:element name="r"><xs:complexType><xs:sequence>
              <xs:element name="p" type="Pvm" minOccurs="0" maxOccurs="unbounded"/>
              <xs:element name="t" type="xs:dateTime" minOccurs="0" maxOccurs="unbounded"/>
              <xs:element name="y" type="xs:gYear" minOccurs="0"/>
              <xs:element name="u" type="xs:duration" minOccurs="0"/>
            </xs:sequence></xs:complexType></xs:element>"###,
        cases: &[
            (
                true,
                "<r><p>1900-01-01</p><p>2024-02-29</p><t>2024-01-01T10:00:00.5+02:00</t><y>2024</y><u>P1Y2MT3H</u></r>",
            ),
            (false, "<r><p>1899-12-31</p></r>"),
            (false, "<r><p>2023-02-29</p></r>"),
            (false, "<r><t>2024-01-01 10:00:00</t></r>"),
            (false, "<r><y>24</y></r>"),
            (false, "<r><u>P1H</u></r>"),
            (true, "<r><p>2000-01-01Z</p></r>"),
            (false, "<r><p> 2000-01-01</p></r>"),
            (false, "<r><p>2000-01-01\t</p></r>"),
            (true, "<r><t>2024-01-01T10:00:00Z\t</t></r>"),
            (false, "<r><t>2024-01-01T10:00:00 </t></r>"),
            (false, "<r><t> 2024-01-01T10:00:00Z</t></r>"),
        ],
    },
    Probe {
        name: "lists and unions",
        schema: r###"<xs:simpleType name="Ints"><xs:list itemType="xs:int"/></xs:simpleType>
            <xs:simpleType name="Three"><xs:restriction base="Ints"><xs:length value="3"/></xs:restriction></xs:simpleType>
            <xs:simpleType name="DateOrNone"><xs:union memberTypes="xs:date"><xs:simpleType><xs:restriction base="xs:token"><xs:enumeration value="none"/></xs:restriction></xs:simpleType></xs:union></xs:simpleType>
            <xs:element name="r"><xs:complexType><xs:sequence>
              <xs:element name="l" type="Ints" minOccurs="0"/><xs:element name="t" type="Three" minOccurs="0"/>
              <xs:element name="u" type="DateOrNone" minOccurs="0" maxOccurs="unbounded"/>
              <xs:element name="n" type="xs:NMTOKENS" minOccurs="0"/>
            </xs:sequence><xs:attribute name="lang" type="xs:language"/></xs:complexType></xs:element>"###,
        cases: &[
            (
                true,
                "<r lang='fi-FI'><l> 1 2\n 3 </l><t>1 2 3</t><u>2020-01-01</u><u>none</u><n>a b</n></r>",
            ),
            (true, "<r><l></l></r>"),
            (false, "<r><l>1 x</l></r>"),
            (false, "<r><t>1 2</t></r>"),
            (false, "<r><u>never</u></r>"),
            (false, "<r lang='not a language'/>"),
        ],
    },
    Probe {
        name: "element default and fixed values",
        schema: r###"<xs:element name="r"><xs:complexType><xs:sequence>
            <xs:element name="d" type="xs:int" default="5" minOccurs="0"/>
            <xs:element name="f" type="xs:decimal" fixed="2.0" minOccurs="0"/>
            <xs:element name="g" type="xs:int" minOccurs="0"/>
            </xs:sequence></xs:complexType></xs:element>"###,
        cases: &[
            (true, "<r><d/><f/></r>"),
            (true, "<r><d>7</d><f>2.0</f></r>"),
            (false, "<r><f>3</f></r>"),
            (false, "<r><f>2</f></r>"),
            (false, "<r><f> 2.0</f></r>"),
            (false, "<r><g/></r>"),
            (false, "<r><d>x</d></r>"),
        ],
    },
    Probe {
        name: "ID uniqueness and binary types",
        schema: r###"<xs:element name="r"><xs:complexType><xs:sequence>
            <xs:element name="i" maxOccurs="unbounded" minOccurs="0"><xs:complexType><xs:attribute name="id" type="xs:ID"/><xs:attribute name="ref" type="xs:IDREF"/></xs:complexType></xs:element>
            <xs:element name="h" type="xs:hexBinary" minOccurs="0"/><xs:element name="b" type="xs:base64Binary" minOccurs="0"/>
            <xs:element name="short" minOccurs="0"><xs:simpleType><xs:restriction base="xs:base64Binary"><xs:maxLength value="3"/></xs:restriction></xs:simpleType></xs:element>
            </xs:sequence></xs:complexType></xs:element>"###,
        cases: &[
            (
                true,
                "<r><i id='a'/><i id='b' ref='a'/><h>0a1B</h><b>QUJD RA==</b><short>QUJD</short></r>",
            ),
            (false, "<r><i id='a'/><i id='a'/></r>"),
            (false, "<r><i id='1a'/></r>"),
            (false, "<r><h>0a1</h></r>"),
            (false, "<r><b>QUJ</b></r>"),
            (false, "<r><short>QUJDRA==</short></r>"),
        ],
    },
    Probe {
        name: "imports, namespaces and qualified forms",
        schema: r###"<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:t="urn:t" targetNamespace="urn:t">
            <xs:element name="r"><xs:complexType><xs:sequence><xs:element name="local"/><xs:element ref="t:global"/></xs:sequence></xs:complexType></xs:element>
            <xs:element name="global" type="xs:string"/></xs:schema>"###,
        cases: &[
            (
                true,
                r###"<t:r xmlns:t="urn:t"><local/><t:global/></t:r>"###,
            ),
            (false, r###"<r xmlns="urn:t"><local/><global/></r>"###),
            (
                false,
                r###"<t:r xmlns:t="urn:t"><t:local/><t:global/></t:r>"###,
            ),
            (false, r###"<r><local/><global/></r>"###),
        ],
    },
];

/// Where the engine deliberately differs from libxml2 2.9.14: (what, schema body,
/// document, engine verdict, libxml2 verdict). Each one is still checked both ways, so a
/// change on either side shows up. The README lists the same ("Differences from libxml2").
const DEVIATIONS: &[(&str, &str, &str, bool, bool)] = &[
    (
        "built-in list types have minLength 1 (XML Schema Part 2 §3.3.2); libxml2 accepts an empty NMTOKENS",
        r###"<xs:element name="n" type="xs:NMTOKENS"/>"###,
        "<n></n>",
        false,
        true,
    ),
    (
        "built-in list types have minLength 1; libxml2 accepts an empty IDREFS attribute",
        r###"<xs:element name="n"><xs:complexType><xs:attribute name="i" type="xs:IDREFS"/></xs:complexType></xs:element>"###,
        "<n i=''/>",
        false,
        true,
    ),
    (
        "whitespace-only CDATA in element-only content is whitespace in the infoset (Structures §3.4.4 clause 2.3 looks at character information items, not at how they were written); libxml2 refuses any CDATA section there",
        r###"<xs:element name="r"><xs:complexType><xs:sequence><xs:element name="a" minOccurs="0"/></xs:sequence></xs:complexType></xs:element>"###,
        "<r><![CDATA[ \n\t]]><a/></r>",
        true,
        false,
    ),
    (
        "an empty CDATA section in element-only content adds no character at all; libxml2 refuses it",
        r###"<xs:element name="r"><xs:complexType><xs:sequence><xs:element name="a" minOccurs="0"/></xs:sequence></xs:complexType></xs:element>"###,
        "<r><a/><![CDATA[]]></r>",
        true,
        false,
    ),
];

#[test]
fn documented_deviations_from_libxml2() {
    let xmllint = support::xmllint();
    let dir = tempfile::tempdir().expect("tempdir");
    for (i, (what, body, doc, engine, libxml2)) in DEVIATIONS.iter().enumerate() {
        let text = schema_text(body);
        let schema = Schema::from_str(&text, None).expect("schema loads");
        let ours = schema.validate(doc.as_bytes(), &Limits::default()).is_ok();
        assert_eq!(ours, *engine, "engine verdict changed: {what}");
        if let Some(x) = &xmllint {
            let sp = dir.path().join(format!("d{i}.xsd"));
            let dp = dir.path().join(format!("d{i}.xml"));
            std::fs::write(&sp, &text).expect("write");
            std::fs::write(&dp, doc).expect("write");
            let theirs = support::xmllint_verdicts(x, &sp, &[dp]);
            assert_eq!(theirs, vec![*libxml2], "libxml2 verdict changed: {what}");
        }
    }
}

/// `text` in UTF-16, little- or big-endian, with or without its byte order mark.
fn utf16(text: &str, big_endian: bool, bom: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for unit in std::iter::once(0xFEFF)
        .filter(|_| bom)
        .chain(text.encode_utf16())
    {
        out.extend_from_slice(&if big_endian {
            unit.to_be_bytes()
        } else {
            unit.to_le_bytes()
        });
    }
    out
}

/// The encodings the parser reads as libxml2 does (UTF-16 with its byte order mark), and
/// where it is stricter (README "Encodings"): UTF-16 without a byte order mark (XML 1.0 §4.3.3:
/// it must have one), a UTF-16 document whose declaration names UTF-8 (§4.3.3: a fatal
/// error), and ISO-8859-1 (which a processor may refuse). libxml2 reads all of them.
#[test]
fn encodings_against_libxml2() {
    let decl = |e: &str| format!("<?xml version=\"1.0\" encoding=\"{e}\"?>\n<n>Mäki €</n>\n");
    let latin1: Vec<u8> = decl("ISO-8859-1")
        .replace(" €", "")
        .chars()
        .map(|c| u8::try_from(u32::from(c)).expect("Latin-1"))
        .collect();
    // (what, document, engine: None = valid or Some(code), libxml2 valid)
    let cases: Vec<(&str, Vec<u8>, Option<&str>, bool)> = vec![
        (
            "UTF-16LE with its mark",
            utf16(&decl("UTF-16"), false, true),
            None,
            true,
        ),
        (
            "UTF-16BE with its mark",
            utf16(&decl("UTF-16"), true, true),
            None,
            true,
        ),
        (
            "UTF-16LE without a mark",
            utf16(&decl("UTF-16"), false, false),
            Some("unsupported_encoding"),
            true,
        ),
        (
            "UTF-16LE declared UTF-8",
            utf16(&decl("UTF-8"), false, true),
            Some("xml_malformed"),
            true,
        ),
        ("ISO-8859-1", latin1, Some("unsupported_encoding"), true),
    ];
    let text = schema_text(r###"<xs:element name="n" type="xs:string"/>"###);
    let schema = Schema::from_str(&text, None).expect("schema loads");
    let xmllint = support::xmllint();
    let dir = tempfile::tempdir().expect("tempdir");
    let schema_path = dir.path().join("e.xsd");
    std::fs::write(&schema_path, &text).expect("write");
    for (i, (what, doc, engine, libxml2)) in cases.iter().enumerate() {
        let ours = schema.validate(doc, &Limits::default()).map(|_| ());
        assert_eq!(
            ours.as_ref().err().map(ValidationFailure::code),
            *engine,
            "{what}: {ours:?}"
        );
        if let Some(x) = &xmllint {
            let path = dir.path().join(format!("e{i}.xml"));
            std::fs::write(&path, doc).expect("write");
            let theirs = support::xmllint_verdicts(x, &schema_path, &[path]);
            assert_eq!(theirs, vec![*libxml2], "libxml2 verdict changed: {what}");
        }
    }
}

#[test]
fn feature_probes_agree_with_expectations_and_libxml2() {
    let xmllint = support::xmllint();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut failures = Vec::new();
    let mut count = 0;
    for (pi, probe) in PROBES.iter().enumerate() {
        let text = schema_text(probe.schema);
        let schema = match Schema::from_str(&text, None) {
            Ok(s) => s,
            Err(e) => {
                failures.push(format!("{}: schema does not load: {e}", probe.name));
                continue;
            }
        };
        let schema_path = dir.path().join(format!("p{pi}.xsd"));
        std::fs::write(&schema_path, &text).expect("write schema");
        let mut files: Vec<PathBuf> = Vec::new();
        for (ci, (expected, doc)) in probe.cases.iter().enumerate() {
            count += 1;
            let ours = schema.validate(doc.as_bytes(), &Limits::default());
            if ours.is_ok() != *expected {
                let detail = match ours {
                    Ok(_) => "valid".to_owned(),
                    Err(ValidationFailure::Invalid(e)) => e.to_string(),
                    Err(e) => e.to_string(),
                };
                failures.push(format!(
                    "{} #{ci}: expected {}, engine says {detail}\n  {doc}",
                    probe.name,
                    if *expected { "valid" } else { "invalid" }
                ));
            }
            let path = dir.path().join(format!("p{pi}_{ci}.xml"));
            std::fs::write(&path, doc).expect("write doc");
            files.push(path);
        }
        if let Some(x) = &xmllint {
            let verdicts = support::xmllint_verdicts(x, &schema_path, &files);
            for (ci, ((expected, doc), theirs)) in probe.cases.iter().zip(verdicts).enumerate() {
                if theirs != *expected {
                    failures.push(format!(
                        "{} #{ci}: expected {}, libxml2 says {}\n  {doc}",
                        probe.name,
                        if *expected { "valid" } else { "invalid" },
                        if theirs { "valid" } else { "invalid" }
                    ));
                }
            }
        }
    }
    println!("{count} feature probes");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
